"""The json and jsonb codecs the app's connections use (app/db/connection.py)."""

from __future__ import annotations

import json

from app.db.connection import _decode_json, _decode_jsonb, _encode_jsonb


def test_decodes_as_the_standard_library_does() -> None:
    for text in ('{"a": [1, 2.5, "x", null, true], "b": {"c": "é"}}', "[]", '"s"', "1e400",
                 '{"big": 123456789012345678901234567890, "neg": -99999999999999999999}'):
        assert _decode_json(text.encode()) == json.loads(text), text


def test_jsonb_round_trip_through_its_version_byte() -> None:
    encoded = _encode_jsonb('{"amount": "10.00"}')
    assert encoded[:1] == b"\x01"
    assert _decode_jsonb(encoded) == {"amount": "10.00"}
    assert _decode_jsonb(_encode_jsonb(b"[1]")) == [1]
