from __future__ import annotations

import uuid
from typing import Any

from fastapi import Response

from app.auth import service as auth_service
from app.auth.deps import (
    AdminOrSelf,
    AdminUser,
    CurrentUser,
    Hasher,
    OptionalUser,
    Principal,
    Tokens,
    ensure_admin_or_self,
)
from app.db.transaction import transaction
from app.errors import Forbidden, Invalid
from app.http import idempotency
from app.http.deps import AppSettings
from app.http.params import IdempotencyKey, PageParams
from app.http.problems import ADMIN, problems
from app.http.responses import json_response
from app.http.routing import make_router
from app.pagination import Page
from app.users import service
from app.users.schemas import UserCreate, UserOut, UserUpdate, UserWithNewToken

router = make_router(prefix="/users", tags=["users"])


@router.post("", status_code=201, response_model=UserOut, summary="Sign up",
             openapi_extra={"security": [{}]},  # a token is optional here
             responses=problems(ADMIN, {409: ["username_taken", "email_taken",
                                             "idempotency_key_in_use"],
                                       422: ["validation_error", "idempotency_key_reused"]},
                                body=True))
async def create_user(body: UserCreate, actor: OptionalUser, hasher: Hasher,
                      settings: AppSettings, idempotency_key: IdempotencyKey = None) -> Response:
    """Anyone may sign up. Only an admin may create another admin (`"role": "admin"`); a
    token is needed for that, and only for that. Passwords are taken exactly as sent."""
    if body.role == "admin" and (actor is None or not actor.is_admin):
        raise Forbidden("only an admin can create admin accounts")
    password_hash = await hasher.hash(body.password)  # before the transaction: ~50 ms
    return await idempotency.created(
        settings, key=idempotency_key, caller=actor, route="POST /users", body=body,
        run=lambda: service.create_user(data=body, password_hash=password_hash))


@router.get("", response_model=Page[UserOut], summary="List users (admin)",
            responses=problems(ADMIN, {422: ["validation_error", "invalid_cursor"]}))
async def list_users(admin: AdminUser, page: PageParams) -> Response:
    """Newest first, a page at a time: pass `next_cursor` back as `cursor`."""
    return json_response(await service.list_users(limit=page.limit, cursor=page.cursor))


@router.get("/{user_id}", response_model=UserOut, summary="One user (admin or self)",
            responses=problems(ADMIN, {404: ["user_not_found"], 422: ["validation_error"]}))
async def get_user(user_id: uuid.UUID, actor: AdminOrSelf) -> Response:
    """An admin sees anyone; a user sees their own account."""
    return json_response(await service.get_user(user_id=user_id))


_UPDATE_ERRORS = problems(ADMIN, {403: ["forbidden", "wrong_current_password"],
                                  404: ["user_not_found"],
                                  409: ["username_taken", "email_taken", "last_admin"],
                                  422: ["validation_error", "current_password_required"],
                                  429: ["too_many_attempts"]}, body=True)


class CurrentPasswordRequired(Invalid, code="current_password_required"): ...


def _allowed_changes(actor: Principal, data: UserUpdate) -> dict[str, Any]:
    changes = data.model_dump(exclude_unset=True, exclude_none=True,
                              exclude={"current_password"})
    if not actor.is_admin and ("role" in changes or "is_active" in changes):
        if changes.get("role", actor.user.role) != actor.user.role or \
                changes.get("is_active", True) is not True:
            raise Forbidden("only an admin can change a role or deactivate an account")
        changes.pop("role", None)
        changes.pop("is_active", None)
    return changes


@router.put("/{user_id}", response_model=UserOut | UserWithNewToken,
            summary="Change a user (admin or self)", responses=_UPDATE_ERRORS)
@router.patch("/{user_id}", response_model=UserOut | UserWithNewToken,
              summary="Change a user (admin or self)", responses=_UPDATE_ERRORS)
async def update_user(user_id: uuid.UUID, body: UserUpdate, actor: CurrentUser,
                      hasher: Hasher, tokens: Tokens, settings: AppSettings) -> Response:
    """`PUT` and `PATCH` both change only the fields sent. Only an admin changes `role` or
    `is_active`. A new email or password ends every token issued before it. Changing one's
    own email or password needs `current_password`; the answer then carries a new
    `access_token` for the caller (every other token of the account is revoked)."""
    ensure_admin_or_self(actor, user_id)
    changes = _allowed_changes(actor, body)
    own_credentials = actor.id == user_id and bool({"email", "password"} & changes.keys())
    if own_credentials:
        if body.current_password is None:
            raise CurrentPasswordRequired(
                "send current_password to change your own email or password",
                field="current_password")
        await auth_service.check_current_password(
            user=actor.user, password=body.current_password, hasher=hasher,
            policy=auth_service.ThrottlePolicy.from_settings(settings))
    if "password" in changes:  # hashed before the transaction: ~50 ms
        changes["password_hash"] = await hasher.hash(changes.pop("password"))
    user, version = await transaction(
        lambda: service.update_user(user_id=user_id, changes=changes))
    if own_credentials and version != actor.claims.version:
        token, lifetime = tokens.issue(user.id, version)
        return json_response(UserWithNewToken(**user.model_dump(), access_token=token,
                                              expires_in=lifetime))
    return json_response(user)


@router.delete("/{user_id}", status_code=204, summary="Deactivate a user (admin)",
               responses=problems(ADMIN, {404: ["user_not_found"], 409: ["last_admin"],
                                          422: ["validation_error"]}))
async def deactivate_user(user_id: uuid.UUID, admin: AdminUser) -> Response:
    """The account can no longer log in and its tokens stop working; invoices that name it
    stay. `PATCH {"is_active": true}` reactivates it (with new tokens only)."""
    await transaction(lambda: service.deactivate_user(user_id=user_id))
    return Response(status_code=204)
