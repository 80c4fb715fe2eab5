-- A payment on a random one of invoices 1..:n_invoices (little contention). The statement is
-- app/services/payments.py's MOVE_MONEY_SQL in autocommit, as in pay_hot.sql.
\set n random(1, :n_invoices)
{{MOVE_MONEY_SQL
$1 = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))::uuid
$2 = gen_random_uuid()
$3 = 1.00
$4 = 'payment'
$5 = 'pgbench'
$6 = now()
$7 = :ref::text
$8 = 'api'
$9 = NULL::text
$10 = now()
}};
