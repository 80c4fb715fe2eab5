"""Invoices between a payer and a receiver: creation, reads, lists, changes, deletion."""
