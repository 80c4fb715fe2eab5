"""Who is calling, as FastAPI dependencies, and the access rules routers apply."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from app.auth import service
from app.auth.passwords import PasswordHasher
from app.auth.tokens import TokenClaims, TokenCodec
from app.db.models import User
from app.errors import Forbidden, NotAuthenticated

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="login", auto_error=False)


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


async def current_user(request: Request,
                       token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    return await _principal(request, token)


async def token_claims(request: Request,
                       token: Annotated[str | None, Depends(oauth2_scheme)]) -> TokenClaims:
    """A token we signed that has not expired. Its account is checked by the route: by the
    CALLER check in the route's own statement (app/auth/queries.py), which saves the
    round trip of the hottest routes, or by principal()."""
    return _claims(request, token)


async def admin_principal(claims: TokenClaims) -> Principal:
    """The admin behind `claims`, checked (401, 403), for a route that took Caller."""
    return Principal(user=await service.authenticate_admin(claims=claims), claims=claims)


async def optional_user(request: Request,
                        token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal | None:
    """None when no token is sent; a sent token must still be valid."""
    if request.headers.get("authorization") is None:
        return None
    return await _principal(request, token)


async def admin_user(caller: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not caller.is_admin:
        raise Forbidden(service.ADMIN_NEEDED)
    return caller


CurrentUser = Annotated[Principal, Depends(current_user)]
# The token only: the route's statement checks the account (see token_claims).
Caller = Annotated[TokenClaims, Depends(token_claims)]
OptionalUser = Annotated[Principal | None, Depends(optional_user)]
AdminUser = Annotated[Principal, Depends(admin_user)]


def ensure_admin_or_self(principal: Principal, user_id: uuid.UUID) -> None:
    if not principal.is_admin and principal.id != user_id:
        raise Forbidden("you may only see or change your own account")


def ensure_can_see_invoice(caller: Principal | tuple[uuid.UUID, str], payer_id: uuid.UUID,
                           receiver_id: uuid.UUID) -> None:
    """`caller` is a Principal, or (id, role) from a statement's CALLER check."""
    user_id, role = (caller.id, caller.user.role) if isinstance(caller, Principal) else caller
    if role != "admin" and user_id not in (payer_id, receiver_id):
        raise Forbidden("only an admin, the payer or the receiver may see this invoice")
