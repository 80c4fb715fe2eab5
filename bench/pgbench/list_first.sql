-- GET /invoices?limit=50: app/services/invoices.py list_invoices() without filters or
-- cursor, i.e. SELECT_INVOICE + ORDER BY + LIMIT limit + 1.
{{SELECT_INVOICE}}
ORDER BY i.created_at DESC, i.id DESC LIMIT 51;
