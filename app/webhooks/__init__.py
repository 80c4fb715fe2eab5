"""Signed events from the payment provider: payments succeeded or failed, refunds; each
event id takes effect at most once."""
