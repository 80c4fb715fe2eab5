-- GET /invoices/{id}: the statement app/services/invoices.py load_invoice() runs
-- (SELECT_INVOICE + WHERE i.id = $1), on a random one of the first :n_invoices seeded
-- invoices. The API runs one more query first, the bearer token check (users and
-- revoked_token); this figure is the invoice read alone.
\set n random(1, :n_invoices)
SELECT i.id, i.payer_id, i.receiver_id, i.amount, i.currency, i.description, i.due_date,
       i.status, i.amount_recovered, i.amount_refunded, i.created_at, i.updated_at,
       p.username AS payer_username, p.email AS payer_email,
       r.username AS receiver_username, r.email AS receiver_email
FROM invoice i
JOIN users p ON p.id = i.payer_id
JOIN users r ON r.id = i.receiver_id
WHERE i.id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid;
