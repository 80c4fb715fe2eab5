-- A payment on the one hot invoice (number 0): every transaction waits for the same row lock.
-- The statement is app/ledger/queries.py's RECORD_PAYMENT_CHECKING_CALLER, run in autocommit
-- exactly as the API runs it without an Idempotency-Key (the admin's token check, update the
-- invoice row if the rule allows, insert the ledger row and the event, commit), its
-- parameters written as values: the token's are those of the benchmark admin's token.
\set n 0
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
