"""Who is calling: passwords, tokens, login with throttling, and the request dependencies
that say whether a caller may do something."""
