-- A payment on the one hot invoice (number 0): every transaction waits for the same row lock.
-- The statement is app/services/payments.py's MOVE_MONEY_SQL, run in autocommit exactly as
-- move_money() runs it (update the invoice row if the rule allows, insert the ledger row,
-- commit), its parameters written as values. The API also runs the token check first; it
-- is not part of this figure.
\set n 0
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
