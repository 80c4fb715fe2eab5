from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError

from app.auth import CurrentUser
from app.errors import PROBLEM_JSON
from app.routers.common import make_router, validate_as
from app.schemas import LoginBody, Token
from app.services import auth as auth_service

router = make_router(tags=["auth"])

_LOGIN_BODY = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string"},
                               "grant_type": {"type": "string"}, "scope": {"type": "string"}},
            }
        },
        "application/json": {"schema": {"$ref": "#/components/schemas/LoginBody"}},
    },
}


async def _login_body(request: Request) -> LoginBody:
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        try:
            data = await request.json()
        except json.JSONDecodeError as exc:
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body",),
                                           "msg": "JSON decode error",
                                           "ctx": {"error": exc.msg}}]) from None
    else:
        form = await request.form()
        data = {k: v for k, v in form.items() if isinstance(v, str)}
    return validate_as(LoginBody, data)


@router.post(
    "/login",
    summary="Log in (OAuth2 password form or JSON) and get a bearer token",
    response_model=Token,
    openapi_extra={"requestBody": _LOGIN_BODY},
    responses={401: {"description": "wrong username or password (`invalid_credentials`)",
                     "content": {PROBLEM_JSON: {}}},
               429: {"description": "too many failed attempts (`too_many_attempts`)",
                     "content": {PROBLEM_JSON: {}}}},
)
async def login(body: Annotated[LoginBody, Depends(_login_body)]) -> Token:
    token, expires_in = await auth_service.login(username=body.username, password=body.password)
    return Token(access_token=token, expires_in=expires_in)


@router.post("/logout", status_code=204, summary="Revoke the token used for this call")
async def logout(principal: CurrentUser) -> Response:
    await auth_service.logout(claims=principal.claims)
    return Response(status_code=204)
