-- GET /invoices?limit=50: app/invoices/queries.py page() without filters or cursor, i.e.
-- SELECT_INVOICE + ORDER BY + LIMIT limit + 1, behind the admin's token check
-- (app/auth/queries.py with_caller) as the API runs it.
WITH {{CALLER}}
SELECT caller.role AS caller_role, q.* FROM caller LEFT JOIN LATERAL (
{{SELECT_INVOICE}}
ORDER BY i.created_at DESC, i.id DESC LIMIT 51) q ON true
ORDER BY q.created_at DESC, q.id DESC;
