"""py-spy on one uvicorn worker while wrk drives a scenario, summarised as text.

py-spy is installed into the virtualenv on demand (`pip install py-spy`). It samples the
worker from outside (`--nonblocking`: the worker is not paused to read its stack), so the
app runs unmodified. The raw output is collapsed stacks ("frame;frame;... count"), which
speedscope (https://www.speedscope.app) opens as a flame graph.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

# Where a frame's file belongs. A sample is charged to the innermost frame that belongs to
# one of these, so stdlib frames (asyncio, selectors, socket writes) count for whoever
# called them: a send() under asyncpg is database time, one under uvicorn is HTTP time.
LAYERS = [
    ("app/ (this project)", ("app/",)),
    ("asyncpg (driver, pool)", ("asyncpg/",)),
    ("peewee + playhouse.pwasyncio", ("peewee.py", "playhouse/")),
    ("pydantic (validation, serialisation)", ("pydantic/", "pydantic_core/")),
    ("fastapi (routing, dependencies)", ("fastapi/",)),
    ("starlette (requests, responses)", ("starlette/",)),
    ("python-jose (JWT)", ("jose/",)),
    ("h11 (HTTP/1.1 parsing)", ("h11/",)),
    ("uvicorn (protocol, ASGI glue)", ("uvicorn/",)),
    ("logging", ("logging/",)),
]
LOOP = "asyncio event loop (polling, scheduling)"
SEND = "_SelectorSocketTransport.write"


def ensure_py_spy() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        print("installing py-spy into the virtualenv (pip install py-spy)...")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"],
                       check=True, timeout=600)
    return str(exe)


def record(py_spy: str, pid: int, out: Path, seconds: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
         "--format", "raw", "--nonblocking", "--output", str(out)],
        capture_output=True, text=True, timeout=seconds + 60)


def _path(frame: str) -> str:
    """'func (dir/file.py:12)' -> 'dir/file.py'"""
    inside = frame[frame.rfind("(") + 1:].rstrip(")")
    return inside.rsplit(":", 1)[0]


def _layer(frames: list[str]) -> str:
    # Only the frames of the callback the event loop is running count; the frames above it
    # (uvicorn's server main, asyncio's run loop) are the same for every sample.
    if _path(frames[-1]) in ("selectors.py", "asyncio/runners.py"):
        return LOOP  # polling (asyncio's selector, or uvloop's C loop under Runner.run)
    runs = [i for i, f in enumerate(frames) if f.startswith("Handle._run (asyncio/")]
    for frame in reversed(frames[runs[-1] + 1:] if runs else frames):
        path = _path(frame)
        for name, prefixes in LAYERS:
            if any(path.startswith(p) or f"/{p}" in path for p in prefixes):
                return name
    return LOOP


def _short(frame: str) -> str:
    return frame.rsplit(":", 1)[0] + ")" if frame.endswith(")") and ":" in frame else frame


def summarize(raws: list[Path], title: str, top: int = 12) -> str:
    """One summary of the samples of every worker (they share the load)."""
    samples: list[tuple[list[str], int]] = []
    for raw in raws:
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                samples.append((stack.split(";"), int(count)))
    total = sum(n for _, n in samples) or 1
    layers: Counter[str] = Counter()
    sends: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    app_inclusive: Counter[str] = Counter()
    for frames, n in samples:
        layer = _layer(frames)
        layers[layer] += n
        if SEND in frames[-1]:
            sends[layer] += n
        self_time[_short(frames[-1])] += n
        for f in {_short(f) for f in frames if _path(f).startswith("app/")}:
            app_inclusive[f] += n
    pct = "{:6.1%}".format
    out = [f"## {title}", f"{total} samples of {len(raws)} worker(s) (200/s each, busy time "
           "only)", "",
           "Time by layer (each sample charged to its innermost library or app/ frame):"]
    out += [f"  {pct(n / total)}  {name}" for name, n in layers.most_common()]
    if sends:
        out += ["", f"Of which socket writes (send() in asyncio's {SEND}), by who wrote:"]
        out += [f"  {pct(n / total)}  {name}" for name, n in sends.most_common()]
    else:
        out += ["", "(No asyncio socket writes seen: under uvloop they happen in C, inside "
                "the Python frame that called them, e.g. asyncpg's Connection._do_execute.)"]
    out += ["", "Top functions by self time:"]
    out += [f"  {pct(n / total)}  {f}" for f, n in self_time.most_common(top)]
    out += ["", "app/ functions by inclusive time:"]
    out += [f"  {pct(n / total)}  {f}" for f, n in app_inclusive.most_common(top)]
    return "\n".join(out) + "\n"
