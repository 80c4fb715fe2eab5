-- GET /invoices/{id}: the statement app/invoices/queries.py one_for_caller() runs (the
-- caller's token check and SELECT_INVOICE ... WHERE i.id = $1 in one statement), on a random
-- one of the first :n_invoices seeded invoices, with the benchmark admin's token.
\set n random(1, :n_invoices)
{{ONE_FOR_CALLER
id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
caller_id = :caller_id::uuid
caller_version = :caller_version::int
caller_jti = :caller_jti::text
}};
