-- GET /invoices?limit=50&cursor=...: page() with a cursor deep in the list, behind the
-- admin's token check as in list_first.sql; -D cursor_ts=... -D cursor_id=... are the
-- cursor's decoded (created_at, id).
WITH {{CALLER}}
SELECT caller.role AS caller_role, q.* FROM caller LEFT JOIN LATERAL (
{{SELECT_INVOICE}}
WHERE (i.created_at, i.id) < (:cursor_ts::timestamptz, :cursor_id::uuid)
ORDER BY i.created_at DESC, i.id DESC LIMIT 51) q ON true
ORDER BY q.created_at DESC, q.id DESC;
