"""The README's walk-through runs verbatim: its shell blocks, against a live server, with
only the base URL and the Python path put in (they differ on every machine)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT, Api, Server, app_env

SECTIONS = ("## A walk-through with curl", "### Webhooks by hand",
            "### Overpayment and credit")


def shell_blocks() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = []
    for title in SECTIONS:
        start = text.index(title + "\n") + len(title)
        end = re.search(r"\n#{2,3} ", text[start:])
        section = text[start:start + end.start()] if end else text[start:]
        blocks += re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return "\n".join(blocks)


def test_the_walk_through_runs_as_written(api: Api, server: Server, database_url: str,
                                          tmp_path) -> None:
    script = shell_blocks()
    assert "B=http://127.0.0.1:8000" in script and ".venv/bin/python" in script
    script = script.replace("B=http://127.0.0.1:8000", f"B={server.url}") \
        .replace(".venv/bin/python", sys.executable)
    # In a folder of its own (it writes event.json and friends), with the project
    # importable as from its root.
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                          env=app_env(database_url, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert '"status":"partially_paid"' in out  # the first invoice, after 400.50
    assert '"amount_paid"' not in out and '"credited":"50.00"' in out
    assert '{"balances":[{"currency":"INR","amount":"50.00"}]}' in out
    assert '"payment_mode":"credit"' in out and '"source":"credit"' in out
    assert out.rstrip().endswith("}") and "204" in out  # the logout
