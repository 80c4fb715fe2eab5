from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError

from app.auth import CurrentUser
from app.routers.common import AUTH, make_router, problems, validate_as
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
        "application/json": {"schema": LoginBody.model_json_schema()},
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
    responses=problems({401: ["invalid_credentials"], 422: ["validation_error"],
                        429: ["too_many_attempts"]}, body=True),
)
async def login(body: Annotated[LoginBody, Depends(_login_body)]) -> Token:
    token, expires_in = await auth_service.login(username=body.username, password=body.password)
    return Token(access_token=token, expires_in=expires_in)


@router.post("/logout", status_code=204, summary="Revoke the token used for this call",
             responses=problems(AUTH))
async def logout(principal: CurrentUser) -> Response:
    await auth_service.logout(claims=principal.claims)
    return Response(status_code=204)
