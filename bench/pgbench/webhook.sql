-- POST /webhooks/payment/success with a new event id: the statements
-- app/services/webhooks.py _process() runs for payment_succeeded(), in one transaction:
-- claim the event id, then move_money() (the MOVE_MONEY_SQL statement) and load_invoice()
-- (no savepoint: the effect refuses before it writes), then store the response for replays.
-- A random one of invoices 1..:n_invoices; a stored response body of the API's size.
\set n random(1, :n_invoices)
\set r random(1, 1000000000000)
BEGIN;
INSERT INTO webhook_event (id, event_type, fingerprint, created_at)
VALUES ('evt_pgbench_' || :client_id::text || '_' || :r::text, 'payment.succeeded',
        md5(:r::text) || md5(:n::text), now())
ON CONFLICT (id) DO NOTHING RETURNING 1;
{{MOVE_MONEY_SQL
$1 = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
$2 = gen_random_uuid()
$3 = 1.00
$4 = 'payment'
$5 = 'pgbench'
$6 = now()
$7 = :ref::text
$8 = 'webhook'
$9 = 'evt_pgbench_' || :client_id::text || '_' || :r::text
$10 = now()
}};
{{SELECT_INVOICE}}
WHERE i.id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid;
UPDATE webhook_event SET response_status = 200, response_body = repeat('x', 1400)
WHERE id = 'evt_pgbench_' || :client_id::text || '_' || :r::text;
COMMIT;
