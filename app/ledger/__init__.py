"""The ledger: invoice transactions (payments, refunds, failed attempts), exact under any
concurrency, and the reconciliation of every invoice against them."""
