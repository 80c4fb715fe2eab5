"""The app against the least code that runs its statements (bench/reference_app.py) and
against the floor (bench/hello.py), all three served the same way, alternated round by
round so that each round's figures share the machine's mood:

    .venv/bin/python bench/reference.py [--rounds 4] [--seconds 8] [--connections 16]
                                        [--only read,pay,webhook,list] [--profile]

On a throwaway database (`payapp_bench_reference`, seeded as bench/run.py seeds: 1,000
invoices to read and pay, then 100,000 for the list page). Prints, per scenario and round,
each server's req/s and its share of the floor, the app's share of the reference's, and the
CPU time each server's workers spent per request. With `--profile`, the last round of each
scenario also samples the reference's and the app's workers with py-spy, summarised by layer
in `bench/results/profile-reference-<date>.txt`.
docs/PERFORMANCE.md ("A list page planned once") reads the result.
"""

# ruff: noqa: E402  (the project root goes on sys.path before the imports that need it)
from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness
import profiling
import seed
from harness import LIST_PAGE_SIZE, AppServer, BenchError

DB_NAME = "payapp_bench_reference"
ADMIN = ("bench_admin", "bench_admin@example.com")
SCENARIOS = {  # key: (wrk script, its arguments given a round's tag)
    "read": ("get_invoice.lua", lambda workdir, secret, tag: [str(seed.SPREAD)]),
    "pay": ("pay.lua", lambda workdir, secret, tag: ["1", str(seed.SPREAD), seed.PAYMENT,
                                                     tag]),
    "webhook": ("webhook.lua", lambda workdir, secret, tag: [_bodies(workdir, secret, tag)]),
    "list": ("list.lua", lambda workdir, secret, tag: [f"/invoices?limit={LIST_PAGE_SIZE}"]),
}


def _bodies(workdir: Path, secret: str, tag: str) -> str:
    path = workdir / f"webhook-{tag}.txt"
    seed.write_webhook_bodies(path, 40_000, secret, tag)  # more than a round can send
    return str(path)


def _spy(pool: ThreadPoolExecutor, py_spy: str, workers: list[int], raws: list[Path],
         seconds: int) -> None:
    """py-spy on every worker at once, each into its raw file."""
    for spy in pool.map(lambda a: profiling.record(py_spy, *a, seconds),
                        zip(workers, raws, strict=True)):
        if spy.returncode != 0:
            raise BenchError(f"py-spy failed: {spy.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8, help="per point")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the reference and the app in each scenario's last round")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help="some of: " + ", ".join(SCENARIOS))
    args = parser.parse_args()
    wanted = [key.strip() for key in args.only.split(",") if key.strip()]
    if unknown := set(wanted) - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    wrk = harness.find_wrk()
    py_spy = profiling.ensure_py_spy() if args.profile else ""
    profile_out = ROOT / "bench" / "results" / f"profile-reference-{date.today()}.txt"
    if args.profile:
        profile_out.unlink(missing_ok=True)
    workdir = ROOT / "bench" / "results" / "reference.tmp"  # git-ignored
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    fresh = harness.fresh_app_database(DB_NAME, ADMIN)
    env, webhook_secret = fresh.env, fresh.secrets["WEBHOOK_SECRET"]
    db = seed.Database(fresh.url)
    db.seed_base()
    if "list" in wanted:
        db.top_up(100_000)
    servers = {"floor": AppServer(env, workdir / "hello.log", factory="bench.hello:create_app"),
               "reference": AppServer(env, workdir / "reference.log",
                                      factory="bench.reference_app:create_app"),
               "app": AppServer(env, workdir / "app.log")}
    try:
        for srv in servers.values():
            srv.wait_ready()
        token = servers["app"].login(*fresh.admin)
        print(f"{args.connections} connections, {args.seconds} s per point, "
              f"{args.rounds} rounds", flush=True)
        for key in wanted:
            script, wrk_args = SCENARIOS[key]
            for n in range(1, args.rounds + 1):
                rps, cpu = {}, {}
                for name, srv in servers.items():
                    tag = f"reference-{key}-{n}-{name}"
                    lua, given = ("list.lua", ["/"]) if name == "floor" else \
                        (script, wrk_args(workdir, webhook_secret, tag))
                    workers = srv.worker_pids()
                    before = harness.cpu_of(workers)
                    spied = args.profile and n == args.rounds and name != "floor"
                    with ThreadPoolExecutor(1 + len(workers)) as pool:
                        load = pool.submit(harness.run_wrk, wrk, lua, srv.url,
                                           args.connections, args.seconds, 2, given, token)
                        if spied:
                            raws = [workdir / f"profile-{key}-{name}-{pid}.folded"
                                    for pid in workers]
                            time.sleep(1)  # into the load
                            _spy(pool, py_spy, workers, raws, args.seconds - 2)
                        res = load.result()
                    if spied:
                        with profile_out.open("a") as f:
                            f.write(profiling.summarize(raws, f"{key}, {name}, "
                                    f"{args.connections} connections") + "\n")
                    # ms of the workers' CPU a request
                    cpu[name] = (harness.cpu_of(workers) - before) * 1000 / max(res.requests, 1)
                    odd = {c: k for c, k in res.status.items() if not 200 <= c < 300}
                    if odd or res.socket_errors or res.dup:
                        raise BenchError(f"{key} on {name}: non-2xx {odd}, socket errors "
                                         f"{res.socket_errors}, repeated bodies {res.dup}")
                    rps[name] = res.rps
                floor = rps["floor"]
                print(f"{key:<8} round {n}: floor {floor:8,.0f}  reference "
                      f"{rps['reference']:7,.0f} ({rps['reference'] / floor:.3f})  app "
                      f"{rps['app']:7,.0f} ({rps['app'] / floor:.3f})  app/reference "
                      f"{rps['app'] / rps['reference']:.2f}  |  workers' CPU a request: "
                      f"reference {cpu['reference']:.3f} ms, app {cpu['app']:.3f} ms",
                      flush=True)
    finally:
        for srv in servers.values():
            srv.stop()
        db.close()
        harness.drop_database(fresh.server, DB_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
