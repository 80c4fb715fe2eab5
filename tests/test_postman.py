"""The Postman collection (postman/), run with newman against the live server, twice.

The collection signs up its own users with a per-run suffix, so the second run against the
same database checks that it can be re-run as is. Node modules are installed with `npm ci`
from postman/package-lock.json when missing; without npm the test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, WEBHOOK_SECRETS, Account, Api, Server

POSTMAN = ROOT / "postman"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"
COLLECTION = POSTMAN / "payment-app.postman_collection.json"
ENVIRONMENT = POSTMAN / "local.postman_environment.json"
MIN_ASSERTIONS = 40


def _node_env() -> dict[str, str]:
    env = dict(os.environ)
    # The server is local: never send it through a proxy the machine may have configured.
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    return env


def _newman() -> Path:
    if not NEWMAN.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not on PATH, so newman cannot be installed (postman/package.json)")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=POSTMAN,
                              capture_output=True, text=True, timeout=600, env=_node_env())
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    assert NEWMAN.exists(), f"{NEWMAN} is missing after npm ci"
    return NEWMAN


def _run_newman(newman: Path, server: Server, admin: Account, report: Path
                ) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    cmd = [
        str(newman), "run", str(COLLECTION), "-e", str(ENVIRONMENT),
        "--env-var", f"base_url={server.url}",
        "--env-var", f"admin_username={admin.username}",
        "--env-var", f"admin_password={admin.password}",
        "--env-var", f"webhook_secret={WEBHOOK_SECRETS[0]}",
        "--reporters", "cli,json", "--reporter-json-export", str(report),
        "--timeout-request", "30000", "--color", "off", "--disable-unicode",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_node_env())
    assert report.exists(), f"newman wrote no report:\n{done.stdout}\n{done.stderr}"
    return done, json.loads(report.read_text())


def _failures(summary: dict[str, Any]) -> list[str]:
    return [
        f"{f.get('source', {}).get('name', '?')}: "
        f"{f.get('error', {}).get('test') or ''} {f.get('error', {}).get('message', '')}"
        for f in summary["run"]["failures"]
    ]


def test_postman_collection_passes_twice(server: Server, api: Api, admin: Account,
                                         tmp_path: Path) -> None:
    newman = _newman()
    for run in (1, 2):
        done, summary = _run_newman(newman, server, admin, tmp_path / f"newman-{run}.json")
        stats = summary["run"]["stats"]
        failures = _failures(summary)
        context = (f"run {run}: exit {done.returncode}\n" + "\n".join(failures)
                   + f"\n{done.stdout[-8000:]}\n{done.stderr[-4000:]}")
        assert done.returncode == 0, context
        assert failures == [], context
        assert stats["assertions"]["failed"] == 0, context
        assert stats["requests"]["failed"] == 0, context
        assert stats["testScripts"]["failed"] == 0, context
        assert stats["prerequestScripts"]["failed"] == 0, context
        assert stats["assertions"]["total"] >= MIN_ASSERTIONS, stats

    # Every invoice the collection touched still agrees with its ledger.
    check = api.reconcile()
    assert check.returncode == 0, check.stdout + check.stderr
