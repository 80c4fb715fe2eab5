"""The HTTP layer: problem+json errors and their handlers, the ASGI middleware, exact JSON
bodies, request dependencies, response helpers and the one replay mechanism."""
