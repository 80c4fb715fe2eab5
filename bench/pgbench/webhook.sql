-- POST /webhooks/payment/success with a new event id: the statements
-- app/services/webhooks.py _process() runs for payment_succeeded(), in one transaction:
-- claim the event id, then move_money() (the _MOVE_MONEY_SQL statement) and load_invoice()
-- (no savepoint: the effect refuses before it writes), then store the response for replays.
-- _invoice_currency() is left out: each worker caches an invoice's currency, and after the
-- warm-up every one of the 1,000 invoices is cached. A random one of invoices 1..:n_invoices; a stored response body of the API's size.
\set n random(1, :n_invoices)
\set r random(1, 1000000000000)
BEGIN;
INSERT INTO webhook_event (id, event_type, fingerprint, created_at)
VALUES ('evt_pgbench_' || :client_id::text || '_' || :r::text, 'payment.succeeded',
        md5(:r::text) || md5(:n::text), now())
ON CONFLICT (id) DO NOTHING RETURNING 1;
WITH p AS (
    SELECT ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid AS invoice_id,
           'INR'::text AS currency, 100::bigint AS amount,
           'payment'::text AS kind, gen_random_uuid() AS id, 'pgbench'::text AS payment_mode,
           now() AS payment_date, :ref::text AS reference, 'webhook'::text AS source,
           'evt_pgbench_' || :client_id::text || '_' || :r::text AS event_id,
           now() AS created_at
), inv AS (
    SELECT i.id, i.amount, i.amount_recovered, i.amount_refunded, i.currency
    FROM invoice i, p WHERE i.id = p.invoice_id
    FOR UPDATE OF i
), ok AS (
    SELECT inv.id FROM inv, p
    WHERE inv.currency = p.currency
      AND CASE WHEN p.kind = 'payment' THEN p.amount <= inv.amount - inv.amount_recovered
               ELSE p.amount <= inv.amount_recovered - inv.amount_refunded END
), ins AS (
    INSERT INTO invoice_transaction (id, invoice_id, kind, status, amount, currency,
        payment_mode, payment_date, reference, source, event_id, created_at)
    SELECT p.id, ok.id, p.kind, 'succeeded', p.amount, p.currency, p.payment_mode,
           p.payment_date, p.reference, p.source, p.event_id, p.created_at
    FROM ok, p
    RETURNING invoice_id
), upd AS (
    UPDATE invoice i SET
        amount_recovered = i.amount_recovered
            + CASE WHEN p.kind = 'payment' THEN p.amount ELSE 0 END,
        amount_refunded = i.amount_refunded
            + CASE WHEN p.kind = 'refund' THEN p.amount ELSE 0 END,
        last_attempt_failed = CASE WHEN p.kind = 'payment' THEN false
                                   ELSE i.last_attempt_failed END,
        updated_at = p.created_at
    FROM ins, p WHERE i.id = ins.invoice_id
    RETURNING i.id
)
SELECT inv.amount, inv.amount_recovered, inv.amount_refunded, inv.currency,
       EXISTS (SELECT 1 FROM upd) AS applied
FROM inv;
SELECT i.id, i.payer_id, i.receiver_id, i.amount, i.currency, i.description, i.due_date,
       i.status, i.amount_recovered, i.amount_refunded, i.created_at, i.updated_at,
       p.username AS payer_username, p.email AS payer_email,
       r.username AS receiver_username, r.email AS receiver_email
FROM invoice i
JOIN users p ON p.id = i.payer_id
JOIN users r ON r.id = i.receiver_id
WHERE i.id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid;
UPDATE webhook_event SET response_status = 200, response_body = repeat('x', 1400)
WHERE id = 'evt_pgbench_' || :client_id::text || '_' || :r::text;
COMMIT;
