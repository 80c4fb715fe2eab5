-- GET /invoices?limit=50&cursor=...: page() with a cursor deep in the list, as in
-- list_first.sql; -D cursor_ts=... -D cursor_id=... are the cursor's decoded
-- (created_at, id).
{{LIST_PAGE_AFTER
after_created = :cursor_ts::timestamptz
after_id = :cursor_id::uuid
allowed_user = NULL::uuid
caller_id = :caller_id::uuid
caller_version = :caller_version::int
caller_jti = :caller_jti::text
}};
