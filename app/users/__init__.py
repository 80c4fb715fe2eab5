"""Accounts: sign-up, reads, changes, deactivation."""
