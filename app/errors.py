"""Domain errors: refusals a caller can act on, each with a stable `code`.

Services raise them and know nothing of HTTP; app/http/problems.py maps each kind to a
status and a problem+json body, in one place.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal. Subclasses fix `code` (`class UsernameTaken(Conflict, code="...")`);
    `field` names the input at fault, if one is, and `source` where that input came from
    ("body", "query" or "path")."""

    code: str = "refused"
    retry_after: int | None = None  # seconds after which trying again may succeed

    def __init_subclass__(cls, code: str | None = None, **kw: object) -> None:
        super().__init_subclass__(**kw)
        if code is not None:
            cls.code = code

    def __init__(self, detail: str, *, field: str | None = None, source: str = "body") -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.source = source


class NotAuthenticated(DomainError, code="not_authenticated"):
    def __init__(self, detail: str = "sign in first: send 'Authorization: Bearer <token>'",
                 **kw: str) -> None:
        super().__init__(detail, **kw)


class Forbidden(DomainError, code="forbidden"): ...
class NotFound(DomainError, code="not_found"): ...
class Conflict(DomainError, code="conflict"): ...


class Invalid(DomainError, code="validation_error"):
    """The input breaks a rule the schema could not check (422)."""


class TooManyAttempts(DomainError, code="too_many_attempts"):
    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(DomainError, code="database_unavailable"):
    """The database cannot be reached right now; retrying later is safe."""

    retry_after = 1
