-- A payment on a random one of invoices 1..:n_invoices (little contention). The statement is
-- app/services/payments.py's _MOVE_MONEY_SQL in autocommit, as in pay_hot.sql.
\set n random(1, :n_invoices)
WITH p AS (
    SELECT ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid AS invoice_id,
           'INR'::text AS currency, 100::bigint AS amount,
           'payment'::text AS kind, gen_random_uuid() AS id, 'pgbench'::text AS payment_mode,
           now() AS payment_date, :ref::text AS reference, 'api'::text AS source,
           NULL::text AS event_id, now() AS created_at
{{LEDGER_STATEMENT_AFTER_P}};
