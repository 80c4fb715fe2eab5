"""Keyset cursors: what the API issues it reads back; anything else is `invalid_cursor`."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.pagination import InvalidCursor, decode_cursor, encode_cursor, page_json


@given(when=st.datetimes(timezones=st.just(UTC)), row_id=st.uuids())
def test_a_cursor_reads_back(when: datetime, row_id: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(when, row_id)) == (when, row_id)


def test_an_offset_is_moved_to_utc() -> None:
    when = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=5)))
    assert decode_cursor(encode_cursor(when, uuid.UUID(int=1)))[0] == datetime(2026, 1, 1, 7,
                                                                             tzinfo=UTC)


@pytest.mark.parametrize("raw", [
    "not base64!", "", "Zm9v",
    base64.urlsafe_b64encode(b"2026-01-01T00:00:00|not-a-uuid").decode(),
    base64.urlsafe_b64encode(f"2026-01-01T00:00:00|{uuid.uuid4()}".encode()).decode(),  # naive
    base64.urlsafe_b64encode(f"0001-01-01T00:00:00+01:00|{uuid.uuid4()}".encode()).decode(),
    base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
])
def test_anything_else_is_refused_as_the_cursor_parameter(raw: str) -> None:
    with pytest.raises(InvalidCursor) as refused:
        decode_cursor(raw)
    assert (refused.value.field, refused.value.source) == ("cursor", "query")


def test_a_page_keeps_limit_rows_and_points_past_the_last() -> None:
    rows = [{"created_at": datetime(2026, 1, 1, tzinfo=UTC) - timedelta(seconds=n),
             "id": uuid.UUID(int=n)} for n in range(4)]
    first = page_json(rows, 3, lambda row: row["id"])
    assert first["data"] == [uuid.UUID(int=n) for n in range(3)]
    assert decode_cursor(first["next_cursor"]) == (rows[2]["created_at"], rows[2]["id"])
    assert page_json(rows[:3], 3, lambda row: row["id"])["next_cursor"] is None
    assert page_json([], 3, lambda row: row)["data"] == []
