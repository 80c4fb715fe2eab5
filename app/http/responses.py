"""The one way a route answers with a JSON body."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from app.http.problems import PROBLEM_JSON


def json_response(body: BaseModel | dict[str, Any], *, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """Serialised once: a model by pydantic-core directly. (Returned as a model, FastAPI
    would first validate it again against the route's response_model, which costs as much
    as building it; the models here are built from the app's own rows.)"""
    if isinstance(body, BaseModel):
        content = body.model_dump_json().encode()
    else:
        content = json.dumps(body, ensure_ascii=False, allow_nan=False,
                             separators=(",", ":")).encode()
    return Response(content, status_code=status, headers=headers,
                    media_type=PROBLEM_JSON if status >= 400 else "application/json")
