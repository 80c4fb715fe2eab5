from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, Request, Response

from app.auth import service
from app.auth.deps import CurrentUser, Hasher, Tokens
from app.auth.schemas import LoginBody, Token
from app.auth.service import ThrottlePolicy
from app.db.transaction import transaction
from app.http.deps import AppSettings
from app.http.jsonbody import json_invalid, validate_as
from app.http.problems import AUTH, problems
from app.http.responses import json_response
from app.http.routing import make_router

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
    if "json" in request.headers.get("content-type", ""):
        try:
            data = await request.json()
        except json.JSONDecodeError as exc:
            raise json_invalid(exc.msg) from None
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
async def login(body: Annotated[LoginBody, Depends(_login_body)], hasher: Hasher,
                tokens: Tokens, settings: AppSettings) -> Response:
    """The OAuth2 password form (as Swagger's Authorize sends it) or JSON; the username may
    also be the email. Repeated failures for one account are throttled (`429`)."""
    # No transaction: each statement commits by itself, so the attempt is counted before
    # the password is checked (and concurrent guesses never wait on one another).
    token, expires_in = await service.login(
        username=body.username, password=body.password, hasher=hasher, tokens=tokens,
        policy=ThrottlePolicy.from_settings(settings))
    return json_response(Token(access_token=token, expires_in=expires_in))


@router.post("/logout", status_code=204, summary="Revoke the token used for this call",
             responses=problems(AUTH))
async def logout(principal: CurrentUser) -> Response:
    """The token used for this call is refused from now on; other sessions go on."""
    await transaction(lambda: service.logout(claims=principal.claims))
    return Response(status_code=204)
