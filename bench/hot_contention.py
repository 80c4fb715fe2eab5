"""The hot invoice's statement in pgbench, alone and beside busy loops, alternated with the
app serving the same payments, round by round:

    .venv/bin/python bench/hot_contention.py [--rounds 2] [--seconds 8] [--connections 16]

Every payment on the one hot invoice waits for its row lock, which the backend holding it
keeps until it has run the statement and committed; a backend that has to wait for a core
holds the lock that much longer. This shows how much the hot invoice's rate owes to the CPU
other processes take on the same cores: pgbench (`bench/pgbench/pay_hot.sql`, the app's own
statement) alone, then beside one and two processes of `while True: pass`; the app on the
same invoice with the CPU its workers used meanwhile; and the reference
(bench/reference_app.py: the least code that serves the same statement) likewise
(docs/PERFORMANCE.md, "The floor on both sides of every point; where the targets stand").
On a throwaway database (`payapp_bench_hot`, seeded as bench/run.py seeds).
"""

# ruff: noqa: E402  (the project root goes on sys.path before the imports that need it)
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness
import seed
from harness import AppServer, BenchError

DB_NAME = "payapp_bench_hot"
ADMIN = ("bench_admin", "bench_admin@example.com")
T = TypeVar("T")


def beside_busy_loops(count: int, measure: Callable[[], T]) -> T:
    """`measure()` while `count` processes spin on the CPU."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(count)]
    try:
        if loops:
            time.sleep(0.5)  # running before the measurement starts
        return measure()
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8, help="per point")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    wrk, pgbench = harness.find_wrk(), harness.find_pgbench()
    workdir = ROOT / "bench" / "results" / "hot.tmp"  # git-ignored
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    fresh = harness.fresh_app_database(DB_NAME, ADMIN)
    db = seed.Database(fresh.url)
    servers: dict[str, AppServer] = {}
    accepted: dict[str, int] = {}  # each point's reference tag -> payments it counted

    def pgbench_beside(loops: int, tag: str, caller: dict[str, str]) -> float:
        res = beside_busy_loops(loops, lambda: harness.run_pgbench(
            pgbench, "pay_hot.sql", fresh.url, args.connections, args.seconds,
            {"ref": tag, **caller}, workdir))
        if res.failed:
            raise BenchError(f"pgbench: {res.failed} failed transactions")
        accepted[tag] = res.transactions
        return res.tps

    def served(name: str, tag: str, token: str) -> tuple[float, float]:
        """A server's req/s on the hot invoice, and the cores its workers used meanwhile."""
        app = servers[name]
        workers = app.worker_pids()
        before = harness.cpu_of(workers)
        res = harness.run_wrk(wrk, "pay.lua", app.url, args.connections, args.seconds, 2,
                              [str(seed.HOT), str(seed.HOT), seed.PAYMENT, tag], token)
        # over wrk's whole run: the window and its grace
        cores = (harness.cpu_of(workers) - before) / (args.seconds + 2)
        if res.unexpected(()):  # the hot invoice never fills up: not even a 409
            raise BenchError(f"{name}: {res.status}, socket errors {res.socket_errors}")
        accepted[tag] = res.count(201)
        return res.rps, cores

    try:
        db.seed_base()
        servers["app"] = AppServer(fresh.env, workdir / "app.log")
        servers["reference"] = AppServer(fresh.env, workdir / "reference.log",
                                         factory="bench.reference_app:create_app")
        for server in servers.values():
            server.wait_ready()
        token = servers["app"].login(*fresh.admin)
        caller = harness.token_vars(token)
        print(f"{args.connections} connections/clients, {args.seconds} s per point, "
              f"{args.rounds} rounds, the order turned by one each round; pgbench tps, "
              "app req/s", flush=True)
        points = ["alone", "one", "two", "app", "reference"]
        for n in range(1, args.rounds + 1):
            got: dict[str, float] = {}
            cores: dict[str, float] = {}
            for point in points[n - 1:] + points[:n - 1]:
                tag = f"hot-{n}-{point}"
                if point in servers:
                    got[point], cores[point] = served(point, tag, token)
                else:
                    got[point] = pgbench_beside(points.index(point), tag, caller)
            print(f"round {n}: pgbench alone {got['alone']:6,.0f}  beside one busy loop "
                  f"{got['one']:6,.0f}  beside two {got['two']:6,.0f}  |  the app "
                  f"{got['app']:5,.0f} ({got['app'] / got['alone']:.0%}; its workers used "
                  f"{cores['app']:.2f} of a core)  the reference {got['reference']:5,.0f} "
                  f"({got['reference'] / got['alone']:.0%}; {cores['reference']:.2f})",
                  flush=True)
        recovered, ledger = db.ledger()
        counted = {tag: ledger.get(tag, (0, 0))[0] for tag in accepted}
        if counted != accepted or recovered != sum(accepted.values()) * seed.PAYMENT_MINOR:
            raise BenchError(f"the ledger does not match what was counted: {counted} "
                             f"rows against {accepted}; {recovered} recovered")
        print(f"ledger: {sum(accepted.values()):,} payments counted, each one ledger row, "
              "the invoice's sum equal", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        db.close()
        harness.drop_database(fresh.server, DB_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
