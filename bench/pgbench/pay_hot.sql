-- A payment on the one hot invoice (number 0): every transaction waits for the same row lock.
-- The statement is app/services/payments.py's _MOVE_MONEY_SQL, run in autocommit exactly as
-- move_money() runs it (lock the invoice row, check, insert the ledger row, update the sums,
-- commit), its parameters written as values. The API also runs the token check and
-- _invoice_currency() first; they are not part of this figure.
\set n 0
WITH p AS (
    SELECT ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid AS invoice_id,
           'INR'::text AS currency, 100::bigint AS amount,
           'payment'::text AS kind, gen_random_uuid() AS id, 'pgbench'::text AS payment_mode,
           now() AS payment_date, :ref::text AS reference, 'api'::text AS source,
           NULL::text AS event_id, now() AS created_at
{{LEDGER_STATEMENT_AFTER_P}};
