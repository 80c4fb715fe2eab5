"""Schemathesis fuzzes every operation of the OpenAPI document against the live
app, with an admin token and without one: no 5xx, and every status code, content type and
body matches what the document says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Account, Api, Server

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")


def schemathesis(server: Server, tmp_path: Path, *extra: str, seconds: int) -> str:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (requirements-dev.txt)")
    cmd = [st, "run", f"{server.url}/openapi.json", "--checks", CHECKS,
           "--max-time", str(seconds), "--generation-deterministic",
           # One worker: hypothesis parses lambda sources with ast, which is not thread-safe
           # on CPython 3.11.7 ("AST constructor recursion depth mismatch").
           "--workers", "1",
           "--request-timeout", "20", "--report", "junit",
           "--report-dir", str(tmp_path), *extra]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                            timeout=seconds * 4 + 120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    generated = re.search(r"(\d+) generated", out)
    print(f"\nschemathesis ({'with token' if extra else 'anonymous'}): "
          f"{generated.group(0) if generated else out[-400:]}")
    assert generated and int(generated.group(1)) > 100, out[-3000:]
    return out


@pytest.mark.slow
def test_fuzz_with_an_admin_token(api: Api, server: Server, admin: Account, tmp_path) -> None:
    # /logout would revoke the token the rest of the run needs; it is fuzzed anonymously.
    schemathesis(server, tmp_path, "-H", f"Authorization: Bearer {admin.token}",
                 "--exclude-path", "/logout", seconds=75)
    assert api.reconcile().returncode == 0


@pytest.mark.slow
def test_fuzz_anonymously(api: Api, server: Server, tmp_path) -> None:
    schemathesis(server, tmp_path, seconds=30)


def test_openapi_document_is_valid_and_complete(api: Api) -> None:
    from openapi_spec_validator import validate

    doc = api.client.get("/openapi.json").json()
    validate(doc)
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary") and op.get("tags"), where
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert "application/problem+json" in response["content"], where
                    assert "`" in response["description"], (where, status)
