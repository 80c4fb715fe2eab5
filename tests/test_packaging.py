"""The pieces around the code: settings, CLI, containers, the classic uvicorn entry point."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from app.config import Settings
from tests.support import ROOT, Api, app_env, assert_problem


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    assert {name.upper() for name in Settings.model_fields} <= listed


@pytest.mark.parametrize("secret", [None, "changeme", "short-but-not-placeholder"])
def test_production_refuses_weak_secret_key(database_url: str, secret: str | None) -> None:
    env = app_env(database_url, APP_ENV="production", WEBHOOK_SECRET="w" * 40)
    env.pop("SECRET_KEY")
    if secret is not None:
        env["SECRET_KEY"] = secret
    result = run(sys.executable, "-m", "app", "migrate", env=env)
    assert result.returncode == 2
    assert "SECRET_KEY" in result.stderr and "Traceback" not in result.stderr


def test_production_starts_with_strong_secrets(database_url: str) -> None:
    env = app_env(database_url, APP_ENV="production", SECRET_KEY="s" * 48,
                  WEBHOOK_SECRET="w" * 40)
    result = run(sys.executable, "-m", "app", "migrate", env=env)
    assert result.returncode == 0, result.stderr


def test_uvicorn_conf_exposes_the_app(database_url: str) -> None:
    code = "import uvicorn_conf; print(type(uvicorn_conf.app).__name__)"
    result = run(sys.executable, "-c", code, env=app_env(database_url))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "FastAPI"


def test_create_admin_cli_makes_a_working_admin(api: Api) -> None:
    env = app_env(api.database_url)
    result = run(sys.executable, "-m", "app", "create-admin", "--username", "root",
                 "--email", "root@example.com", "--password", "root-pass-123", env=env)
    assert result.returncode == 0, result.stderr
    token = api.login("root", "root-pass-123")
    r = api.client.get("/users", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    again = run(sys.executable, "-m", "app", "create-admin", "--username", "root",
                "--email", "root@example.com", "--password", "root-pass-123", env=env)
    assert again.returncode != 0 and "already exists" in again.stderr
    bad = run(sys.executable, "-m", "app", "create-admin", "--username", "x y",
              "--email", "nope", "--password", "short", env=env)
    assert bad.returncode == 2 and "password" in bad.stderr


def test_migrations_are_idempotent(database_url: str) -> None:
    result = run(sys.executable, "-m", "app", "migrate", env=app_env(database_url))
    assert result.returncode == 0 and "up to date" in result.stdout


def test_docker_compose_config_accepts_the_file() -> None:
    if shutil.which("docker") and run("docker", "compose", "version").returncode == 0:
        cmd = ["docker", "compose", "config", "--quiet"]
    elif shutil.which("docker-compose"):
        cmd = ["docker-compose", "config", "--quiet"]
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "SECRET_KEY": "x", "WEBHOOK_SECRET": "y"}
    result = run(*cmd, env=env)
    assert result.returncode == 0, result.stderr


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER app$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text and "/health" in text


def test_no_500_for_a_body_that_is_not_utf8(api: Api) -> None:
    r = api.client.post("/users", content=b"\xff\xfe\x00",
                        headers={"content-type": "application/json"})
    assert_problem(r, 422)
