-- GET /invoices?limit=50: app/invoices/queries.py page() without filters or cursor
-- (SELECT_INVOICE ... ORDER BY ... LIMIT n + 1, n being bench/harness.py's LIST_PAGE_SIZE)
-- as the app sends it, behind the admin's token check (app/db/guard.py).
{{LIST_PAGE
allowed_user = NULL::uuid
caller_id = :caller_id::uuid
caller_version = :caller_version::int
caller_jti = :caller_jti::text
}};
