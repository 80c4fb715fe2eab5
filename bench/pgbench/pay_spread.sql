-- A payment on a random one of invoices 1..:n_invoices (little contention). The statement is
-- app/ledger/queries.py's RECORD_PAYMENT_CHECKING_CALLER in autocommit, as in pay_hot.sql.
\set n random(1, :n_invoices)
{{RECORD_PAYMENT_CHECKING_CALLER
invoice_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
id = gen_random_uuid()
amount = 1.00
kind = 'payment'
payment_mode = 'pgbench'
payment_date = now()
reference = :ref::text
source = 'api'
event_id = NULL::text
created_at = now()
caller_id = :caller_id::uuid
caller_version = :caller_version::int
caller_jti = :caller_jti::text
}};
