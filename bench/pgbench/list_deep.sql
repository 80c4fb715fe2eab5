-- GET /invoices?limit=50&cursor=...: list_invoices() with a cursor deep in the list;
-- -D cursor_ts=... -D cursor_id=... are the cursor's decoded (created_at, id).
{{SELECT_INVOICE}}
WHERE (i.created_at, i.id) < (:cursor_ts::timestamptz, :cursor_id::uuid)
ORDER BY i.created_at DESC, i.id DESC LIMIT 51;
