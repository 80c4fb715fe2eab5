-- GET /invoices/{id}: app/invoices/queries.py ONE (SELECT_INVOICE ... WHERE i.id = $1) as
-- the app sends it, behind the caller's token check (app/db/guard.py), on a random one of
-- the first :n_invoices seeded invoices, with the benchmark admin's token.
\set n random(1, :n_invoices)
{{ONE
id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
allowed_user = :caller_id::uuid
caller_id = :caller_id::uuid
caller_version = :caller_version::int
caller_jti = :caller_jti::text
}};
