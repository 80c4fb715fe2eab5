-- GET /invoices?limit=50&cursor=...: list_invoices() with a cursor deep in the list;
-- -D cursor_ts=... -D cursor_id=... are the cursor's decoded (created_at, id).
SELECT i.id, i.payer_id, i.receiver_id, i.amount, i.currency, i.description, i.due_date,
       i.status, i.amount_recovered, i.amount_refunded, i.created_at, i.updated_at,
       p.username AS payer_username, p.email AS payer_email,
       r.username AS receiver_username, r.email AS receiver_email
FROM invoice i
JOIN users p ON p.id = i.payer_id
JOIN users r ON r.id = i.receiver_id
WHERE (i.created_at, i.id) < (:cursor_ts::timestamptz, :cursor_id::uuid)
ORDER BY i.created_at DESC, i.id DESC LIMIT 51;
