-- POST /webhooks/payment/success with a new event id: the statements the API runs for it
-- (app/webhooks/service.py apply(), app/http/replay.py once_reading()), in one transaction:
-- claim the event id and read and lock the invoice (CLAIM_LOCKING_INVOICE), record the
-- payment (RECORD_TRANSACTION, which also returns the invoice's new sums), store the answer
-- for replays. A random one of invoices 1..:n_invoices; a stored answer of the API's size.
\set n random(1, :n_invoices)
\set r random(1, 1000000000000)
BEGIN;
{{CLAIM_LOCKING_INVOICE
scope = 'webhook'
key = 'evt_pgbench_' || :client_id::text || '_' || :r::text
fingerprint = md5(:r::text) || md5(:n::text)
now = now()
expires_at = NULL::timestamptz
wait = true
invoice_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
}};
{{RECORD_TRANSACTION
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
{{REPLAY_STORE
scope = 'webhook'
key = 'evt_pgbench_' || :client_id::text || '_' || :r::text
status = 200
body = repeat('x', 1400)
}};
COMMIT;
