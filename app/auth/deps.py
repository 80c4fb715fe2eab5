"""Who is calling, as FastAPI dependencies, and the access rules routers apply."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from app.auth import queries, service
from app.auth.passwords import PasswordHasher
from app.auth.tokens import TokenClaims, TokenCodec
from app.db.guard import Guard, set_guard, settle_pending
from app.db.models import User
from app.errors import Forbidden, NotAuthenticated
from app.http.routing import BEARER_READ


async def _tokens(request: Request) -> TokenCodec:
    return request.app.state.tokens


async def _hasher(request: Request) -> PasswordHasher:
    return request.app.state.hasher


Tokens = Annotated[TokenCodec, Depends(_tokens)]
Hasher = Annotated[PasswordHasher, Depends(_hasher)]


@dataclass(frozen=True)
class Principal:
    user: User
    claims: TokenClaims

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


def _claims(request: Request, token: str | None) -> TokenClaims:
    if not token:
        raise NotAuthenticated()
    if len(request.headers.getlist("authorization")) > 1:  # which one would count? none
        raise NotAuthenticated("send exactly one Authorization header")
    # The codec straight from app.state, not as a dependency: this runs on every request.
    claims = service.read_token(token=token, tokens=request.app.state.tokens)
    request.scope.setdefault("state", {})["user_id"] = str(claims.user_id)  # access log
    return claims


async def _principal(request: Request, token: str | None) -> Principal:
    claims = _claims(request, token)
    return Principal(user=await service.authenticate(claims=claims), claims=claims)


@dataclass
class Checked:
    """The caller as its signed token says, whose account is checked by the request's first
    SELECT (app/db/guard.py; before its first write or its answer, if it has no SELECT):
    401 if the token no longer counts, 403 if the account may not do this."""

    claims: TokenClaims
    role: str | None = None  # once checked

    @property
    def id(self) -> uuid.UUID:
        return self.claims.user_id


def _guard(caller: Checked, *, allowed_user: uuid.UUID | None, refusal: str) -> None:
    """Set the request's guard: an admin may, or the account `allowed_user`."""

    def settle(result: tuple[bool, Any] | None) -> None:
        if result is None:
            raise NotAuthenticated(service.NO_LONGER_VALID)
        allowed, role = result
        if not allowed:
            raise Forbidden(refusal)
        caller.role = role

    async def check_alone() -> None:
        user = await service.authenticate(claims=caller.claims)
        settle((user.role == "admin" or user.id == allowed_user, user.role))

    set_guard(Guard(cte=queries.GUARD, params=queries.guard_params(caller.claims, allowed_user),
                    settle=settle, check_alone=check_alone))


async def _admin(request: Request, token: str | None) -> Checked:
    caller = Checked(_claims(request, token))
    _guard(caller, allowed_user=None, refusal=service.ADMIN_NEEDED)
    return caller


async def _any_user(request: Request, token: str | None) -> Checked:
    caller = Checked(_claims(request, token))
    _guard(caller, allowed_user=caller.id, refusal=service.NO_LONGER_VALID)
    return caller


async def check_now(caller: Checked) -> None:
    """Settle `caller`'s guard now, before the route does something outside the database
    (a DNS lookup) that a refused caller must not be able to cause."""
    await settle_pending()


async def _optional(request: Request, token: str | None) -> Principal | None:
    """None when no token is sent; a sent token must still be valid."""
    if request.headers.get("authorization") is None:
        return None
    return await _principal(request, token)


async def _only_claims(request: Request, token: str | None) -> TokenClaims:
    return _claims(request, token)


class BearerToken(OAuth2PasswordBearer):
    """The bearer token, read and resolved to what the route needs in one dependency (each
    level of FastAPI's dependency solving costs per request: docs/PERFORMANCE.md). To the
    OpenAPI document it is the one OAuth2 password scheme, so /docs can log in."""

    def __init__(self, resolve: Callable[[Request, str | None], Awaitable[Any]]) -> None:
        super().__init__(tokenUrl="login", auto_error=False,
                         scheme_name="OAuth2PasswordBearer")
        self._resolve = resolve

    async def __call__(self, request: Request) -> Any:  # type: ignore[override]
        request.scope[BEARER_READ] = True
        return await self._resolve(request, await super().__call__(request))


CurrentUser = Annotated[Principal, Depends(BearerToken(_principal))]
# The token only, signed by us and not expired: the route checks its account, with the
# CALLER check in its own statement (a payment without Idempotency-Key: the ledger
# statement is not a SELECT a guard could ride on), or with admin_checked().
Caller = Annotated[TokenClaims, Depends(BearerToken(_only_claims))]
OptionalUser = Annotated[Principal | None, Depends(BearerToken(_optional))]
# Checked by the request's first statement (app/db/guard.py), with no round trip of its own.
AdminUser = Annotated[Checked, Depends(BearerToken(_admin))]
CheckedUser = Annotated[Checked, Depends(BearerToken(_any_user))]


async def _admin_or_self(user_id: Annotated[uuid.UUID, Path()], caller: CheckedUser) -> Checked:
    _guard(caller, allowed_user=user_id, refusal=OWN_ACCOUNT_ONLY)
    return caller


# An admin, or the account whose id is the route's {user_id}: decided with the check, so
# before anything else about the request (a stranger's bad ?limit is 403, not 422).
AdminOrSelf = Annotated[Checked, Depends(_admin_or_self)]


def admin_checked(claims: TokenClaims) -> Checked:
    """For a route that took Caller: its admin, checked as AdminUser's is (the guard)."""
    caller = Checked(claims)
    _guard(caller, allowed_user=None, refusal=service.ADMIN_NEEDED)
    return caller


OWN_ACCOUNT_ONLY = "you may only see or change your own account"


def ensure_admin_or_self(principal: Principal, user_id: uuid.UUID) -> None:
    if not principal.is_admin and principal.id != user_id:
        raise Forbidden(OWN_ACCOUNT_ONLY)


def ensure_can_see_invoice(caller: Checked, payer_id: str, receiver_id: str) -> None:
    """For a caller already checked (its role known); the parties' ids as the API writes
    them (app/invoices/service.py's invoice_json)."""
    if caller.role != "admin" and str(caller.id) not in (payer_id, receiver_id):
        raise Forbidden("only an admin, the payer or the receiver may see this invoice")
