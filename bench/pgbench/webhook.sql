-- POST /webhooks/payment/success with a new event id: the statement the API runs for it
-- (app/webhooks/queries.py PAY_AT_ONCE, app/http/replay.py at_once()), in autocommit: the
-- answer stored for the event id if any, else the payment (RECORD_TRANSACTION's) and its
-- answer stored with it. A random one of invoices 1..:n_invoices.
\set n random(1, :n_invoices)
\set r random(1, 1000000000000)
{{PAY_AT_ONCE
scope = 'webhook'
key = 'evt_pgbench_' || :client_id::text || '_' || :r::text
fingerprint = md5(:r::text) || md5(:n::text)
now = now()
today = current_date
invoice_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
id = gen_random_uuid()
amount = 1.00
kind = 'payment'
payment_mode = 'pgbench'
payment_date = now()
reference = :ref::text
source = 'webhook'
event_id = 'evt_pgbench_' || :client_id::text || '_' || :r::text
created_at = now()
}};
