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
