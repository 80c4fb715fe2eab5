from __future__ import annotations

import uuid

from fastapi import Response

from app.auth import AdminUser, CurrentUser, OptionalUser
from app.pagination import DEFAULT_LIMIT
from app.routers.common import (
    ADMIN,
    Cursor,
    IdempotencyKey,
    Limit,
    make_router,
    outcome_response,
    problems,
)
from app.schemas import Page, UserCreate, UserOut, UserUpdate
from app.services import idempotency
from app.services import users as users_service

router = make_router(prefix="/users", tags=["users"])


@router.post("", status_code=201, response_model=UserOut, summary="Sign up",
             responses=problems(ADMIN, {409: ["username_taken", "email_taken",
                                             "idempotency_key_in_use"],
                                       422: ["validation_error", "idempotency_key_reused"]},
                                body=True))
async def create_user(body: UserCreate, actor: OptionalUser,
                      idempotency_key: IdempotencyKey = None) -> Response:
    outcome = await idempotency.execute(
        caller=str(actor.id) if actor else None,
        key=idempotency_key,
        request=("POST /users", body),
        status=201,
        action=lambda: users_service.create_user(actor=actor, data=body),
    )
    return outcome_response(outcome)


@router.get("", response_model=Page[UserOut], summary="List users (admin)",
            responses=problems(ADMIN, {422: ["validation_error", "invalid_cursor"]}))
async def list_users(admin: AdminUser, limit: Limit = DEFAULT_LIMIT,
                     cursor: Cursor = None) -> Page[UserOut]:
    return await users_service.list_users(limit=limit, cursor=cursor)


@router.get("/{user_id}", response_model=UserOut, summary="One user (admin or self)",
            responses=problems(ADMIN, {404: ["user_not_found"], 422: ["validation_error"]}))
async def get_user(user_id: uuid.UUID, actor: CurrentUser) -> UserOut:
    return await users_service.get_user(actor=actor, user_id=user_id)


_UPDATE_ERRORS = problems(ADMIN, {404: ["user_not_found"],
                                  409: ["username_taken", "email_taken", "last_admin"],
                                  422: ["validation_error"]}, body=True)


@router.put("/{user_id}", response_model=UserOut, summary="Change a user (admin or self)",
            responses=_UPDATE_ERRORS)
@router.patch("/{user_id}", response_model=UserOut, summary="Change a user (admin or self)",
              responses=_UPDATE_ERRORS)
async def update_user(user_id: uuid.UUID, body: UserUpdate, actor: CurrentUser) -> UserOut:
    return await users_service.update_user(actor=actor, user_id=user_id, data=body)


@router.delete("/{user_id}", status_code=204, summary="Deactivate a user (admin)",
               responses=problems(ADMIN, {404: ["user_not_found"], 409: ["last_admin"],
                                          422: ["validation_error"]}))
async def deactivate_user(user_id: uuid.UUID, admin: AdminUser) -> Response:
    await users_service.deactivate_user(user_id=user_id)
    return Response(status_code=204)
