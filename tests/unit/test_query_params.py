"""Query models documented as OpenAPI query parameters (app/http/params.py)."""

from __future__ import annotations

import enum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from app.http.params import PageQuery, openapi_parameters


def test_fields_become_query_parameters_as_fastapi_writes_them() -> None:
    class Query(PageQuery):
        kind: Literal["a", "b"] | None = None
        old: int | None = Field(default=None, alias="legacy", deprecated=True,
                                description="use kind")

    params = {p["name"]: p for p in openapi_parameters(Query)}
    assert list(params) == ["limit", "cursor", "kind", "legacy"]
    assert params["limit"]["schema"]["default"] == 20
    assert "default" not in params["kind"]["schema"]  # FastAPI leaves out a None default
    assert params["legacy"]["deprecated"] is True
    assert params["legacy"]["description"] == "use kind"


def test_a_field_whose_schema_lives_elsewhere_is_refused_at_once() -> None:
    class Colour(enum.Enum):
        RED = "red"

    class Query(BaseModel):
        colour: Colour | None = None

    with pytest.raises(TypeError, match="Colour"):
        openapi_parameters(Query)
