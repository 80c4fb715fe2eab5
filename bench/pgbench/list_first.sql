-- GET /invoices?limit=50: app/services/invoices.py list_invoices() without filters or
-- cursor, i.e. SELECT_INVOICE + ORDER BY + LIMIT limit + 1.
SELECT i.id, i.payer_id, i.receiver_id, i.amount, i.currency, i.description, i.due_date,
       i.status, i.amount_recovered, i.amount_refunded, i.created_at, i.updated_at,
       p.username AS payer_username, p.email AS payer_email,
       r.username AS receiver_username, r.email AS receiver_email
FROM invoice i
JOIN users p ON p.id = i.payer_id
JOIN users r ON r.id = i.receiver_id
ORDER BY i.created_at DESC, i.id DESC LIMIT 51;
