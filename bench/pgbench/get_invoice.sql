-- GET /invoices/{id}: the statement app/invoices/queries.py one() runs
-- (SELECT_INVOICE + WHERE i.id = $1), on a random one of the first :n_invoices seeded
-- invoices. The API runs one more query first, the bearer token check (users and
-- revoked_tokens); this figure is the invoice read alone.
\set n random(1, :n_invoices)
{{SELECT_INVOICE}}
WHERE i.id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid;
