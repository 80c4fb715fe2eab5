-- A payment on the one hot invoice (number 0): every transaction waits for the same row lock.
-- The statement is app/ledger/queries.py's RECORD_TRANSACTION, run in autocommit exactly as
-- the API runs it without an Idempotency-Key (update the invoice row if the rule allows,
-- insert the ledger row, commit), its parameters written as values. The API also runs the
-- token check first; it is not part of this figure.
\set n 0
{{RECORD_TRANSACTION
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
}};
