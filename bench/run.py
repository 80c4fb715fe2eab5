"""`make bench` (`make bench QUICK=1`): the API under load next to pgbench doing its SQL.

Starts from scratch every time: a fresh `payapp_bench` database on DATABASE_URL's server (or
the embedded PostgreSQL), the app as production runs it (python -m app serve, 2 workers, APP_ENV=
production), seeded data, then for each scenario and 16 and 64 connections: wrk against the
API, then pgbench running the same SQL with as many clients. It prints one markdown table,
writes it to bench/results/<date>.md (<date>-quick.md with --quick), and checks the ledger:
`python -m app reconcile` passes and the invoices' sums equal the accepted payments counted
by wrk and pgbench. See docs/PERFORMANCE.md.

    .venv/bin/python bench/run.py [--quick] [--profile] [--keep-db] [--launcher uvicorn|granian]
                                  [--only pay_spread,pay_events,...] [--replica]

`--replica` runs the read scenarios on a primary and a synchronous hot standby of the
benchmark's own (two local clusters, tests/clusters.py), once with the app reading from the
primary and once with `READ_DATABASE_URL` on the standby.
"""

# ruff: noqa: E402  (the project root goes on sys.path before the imports that need it)
from __future__ import annotations

import argparse
import platform
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness
import httpx
import report
import seed
from harness import LIST_PAGE_SIZE as PAGE
from harness import AppServer, BenchError

DB_NAME = "payapp_bench"
CONNECTIONS = (16, 64)
ADMIN = ("bench_admin", "bench_admin@example.com")
FLOOR_SECONDS = 3  # the floor measured before and after each point (at most its window)
WEBHOOK_RATE_CAP = 3000  # signed bodies per second of load prepared for the webhook scenario


@dataclass(frozen=True)
class Config:
    seconds: int  # measuring window of each point
    warmup: int  # before the first point of each scenario
    grace: int  # after the window, for the responses still in flight
    pg_seconds: int
    big: int  # invoices in the table for the "big" list scenarios
    big_label: str
    profile_seconds: int = 8


FULL = Config(seconds=10, warmup=2, grace=2, pg_seconds=10, big=1_000_000, big_label="1M")
QUICK = Config(seconds=3, warmup=1, grace=1, pg_seconds=2, big=100_000, big_label="100k")


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    lua: str
    pgbench: str
    wrk_args: Callable[[Run, str, int], list[str]]  # (run, reference tag, seconds)
    pg_vars: Callable[[Run, str], dict[str, str]]  # (run, reference tag)
    pays: str = ""  # how its accepted payments are counted: "201" or "fresh" (webhooks)


def _webhook_args(run: Run, tag: str, seconds: int) -> list[str]:
    path = run.workdir / f"webhook-{tag.replace(':', '-')}.txt"
    seed.write_webhook_bodies(path, WEBHOOK_RATE_CAP * (seconds + run.cfg.grace),
                              run.webhook_secret, tag)
    return [str(path)]


SPREAD_VARS = {"n_invoices": str(seed.SPREAD)}
# The floor every other scenario is divided by: bench/hello.py, served the same way.
HELLO = Scenario("hello", "FastAPI hello-world (the floor)", "list.lua", "",
                 lambda r, t, s: ["/"], lambda r, t: {})
SCENARIOS = [
    Scenario("health", "GET /health", "list.lua", "", lambda r, t, s: ["/health"],
             lambda r, t: {}),
    Scenario("get_invoice", "GET /invoices/{id}", "get_invoice.lua", "get_invoice.sql",
             lambda r, t, s: [str(seed.SPREAD)], lambda r, t: {**SPREAD_VARS, **r.caller}),
    Scenario("pay_hot", "payment, one hot invoice", "pay.lua", "pay_hot.sql",
             lambda r, t, s: [str(seed.HOT), str(seed.HOT), seed.PAYMENT, t],
             lambda r, t: {"ref": t, **r.caller}, pays="201"),
    Scenario("pay_spread", f"payment, {seed.SPREAD:,} invoices", "pay.lua", "pay_spread.sql",
             lambda r, t, s: ["1", str(seed.SPREAD), seed.PAYMENT, t],
             lambda r, t: {"ref": t, **SPREAD_VARS, **r.caller}, pays="201"),
    Scenario("webhook", "webhook payment success", "webhook.lua", "webhook.sql",
             _webhook_args, lambda r, t: {"ref": t, **SPREAD_VARS}, pays="fresh"),
]
BY_KEY = {scn.key: scn for scn in SCENARIOS}


# pay_spread again, with one endpoint subscribed to every event: each payment's events are
# queued and sent to a local receiver during the load by one `python -m app deliver`
# process, as docker-compose.yml runs it (the app's own workers do not deliver here).
# Compared with pay_spread (no endpoint) in the same run, not with pgbench: pgbench would
# queue deliveries the app then has to send while the next point runs.
EVENTS = Scenario("pay_events", f"payment, {seed.SPREAD:,} invoices, 1 endpoint", "pay.lua",
                  "", BY_KEY["pay_spread"].wrk_args, BY_KEY["pay_spread"].pg_vars, pays="201")
# Their points also count the CPU each process spent per payment (the app's workers,
# PostgreSQL, and the deliver process and receiver while they run): where the events' cost
# lands on the machine's cores (docs/EVENTS.md, "Throughput").
CPU_COUNTED = {"pay_spread", EVENTS.key}


def list_scenarios(size: str) -> list[Scenario]:
    return [
        Scenario(f"list_first@{size}", f"GET /invoices?limit={PAGE}, first page, {size}",
                 "list.lua", "list_first.sql", lambda r, t, s: [f"/invoices?limit={PAGE}"],
                 lambda r, t: r.caller),
        Scenario(f"list_deep@{size}", f"GET /invoices?limit={PAGE}, page at 90%, {size}",
                 "list.lua", "list_deep.sql",
                 lambda r, t, s: [f"/invoices?limit={PAGE}&cursor={r.cursor.value}"],
                 lambda r, t: {"cursor_ts": r.cursor.created_at.isoformat(),
                               "cursor_id": r.cursor.row_id, **r.caller}),
    ]


class Run:
    def __init__(self, cfg: Config, app: AppServer, token: str, db_url: str, workdir: Path,
                 webhook_secret: str) -> None:
        self.cfg, self.app, self.token, self.db_url = cfg, app, token, db_url
        self.caller = harness.token_vars(token)  # for the statements that check it
        self.workdir, self.webhook_secret = workdir, webhook_secret
        self.wrk_path, self.pgbench_path = harness.find_wrk(), harness.find_pgbench()
        self.points: list[report.Point] = []
        self.accepted: dict[str, int] = {}  # reference tag -> payments counted as accepted
        self.cursor: seed.Cursor | None = None
        self.queue_age_s: float | None = None  # the events scenario's oldest pending delivery
        self.floor: dict[int, float] = {}  # conns -> the hello-world's req/s
        # Served all along: every point is divided by the floors measured on either side.
        self.hello: AppServer | None = None
        self.floors: dict[int, list[float]] = {}  # conns -> every floor measured beside a point
        # Processes besides the app's workers and PostgreSQL whose CPU the payments' points
        # count (the events scenario's deliver process and receiver), and what they counted:
        # (scenario key, conns) -> process group -> CPU ms per request.
        self.helpers: dict[str, int] = {}
        self.cpu: dict[tuple[str, int], dict[str, float]] = {}

    def measure_floor(self, hello: AppServer) -> None:
        """HELLO on its own server (the app's is idle meanwhile)."""
        app, self.app = self.app, hello
        try:
            self.scenario(HELLO)
        finally:
            self.app = app
        self.floor = {p.conns: p.rps for p in self.points if p.key == HELLO.key}
        for p in self.points:
            p.floor_rps = self.floor.get(p.conns, 0.0)
        self.hello = hello

    def floor_beside(self, conns: int) -> float:
        """The floor at `conns`, measured now (FLOOR_SECONDS, on the hello-world's server;
        the app's is idle meanwhile): the machine's speed changes within a run far more than
        the app's does (docs/PERFORMANCE.md, "A webhook in one statement"), so a ratio is
        taken against the floor of the same moment, measured right before the point and
        right after it. Without the server: the run's first."""
        if self.hello is None:
            return self.floor.get(conns, 0.0)
        res = harness.run_wrk(self.wrk_path, HELLO.lua, self.hello.url, conns,
                              min(FLOOR_SECONDS, self.cfg.seconds), self.cfg.grace,
                              HELLO.wrk_args(self, "", 0), self.token)
        self.floors.setdefault(conns, []).append(res.rps)
        return res.rps

    def floor_note(self) -> str:
        spans = ", ".join(f"{min(f):,.0f}–{max(f):,.0f} req/s at {c}"
                          for c, f in sorted(self.floors.items()))
        return (f"each point's ÷ hello is to the mean of the floors measured right before "
                f"and right after it ({min(FLOOR_SECONDS, self.cfg.seconds)} s each, on the "
                f"hello-world's server): "
                f"{spans}; the hello-world rows are the run's first")

    def wrk(self, scn: Scenario, conns: int, seconds: int, tag: str) -> harness.WrkResult:
        res = harness.run_wrk(self.wrk_path, scn.lua, self.app.url, conns, seconds,
                              self.cfg.grace, scn.wrk_args(self, tag, seconds), self.token)
        if scn.pays:
            self.accepted[tag] = res.count(201) if scn.pays == "201" else res.fresh
        return res

    def point(self, scn: Scenario, conns: int, warm_up: bool) -> None:
        tag = f"{scn.key}:{conns}"
        if warm_up:
            self.wrk(scn, conns, self.cfg.warmup, tag + ":warmup")
        before = self.floor_beside(conns) if scn is not HELLO else 0.0
        counted = self.cpu_now() if scn.key in CPU_COUNTED else {}
        with ThreadPoolExecutor(1) as pool:
            load = pool.submit(self.wrk, scn, conns, self.cfg.seconds, tag)
            time.sleep(1.5)
            split = "/".join(map(str, self.app.connection_split()))
            res = load.result()
        if counted:
            self.cpu[(scn.key, conns)] = self.cpu_per_request(counted, res.requests)
        # The floor on either side of the point: a machine that speeds up or slows down
        # during it moves both halves, and their mean is the floor of the point's moment.
        floor = (before + self.floor_beside(conns)) / 2 if scn is not HELLO else 0.0
        try:
            pg = harness.run_pgbench(self.pgbench_path, scn.pgbench, self.db_url, conns,
                                     self.cfg.pg_seconds, scn.pg_vars(self, "pgbench:" + tag),
                                     self.workdir) if scn.pgbench else \
                harness.PgbenchResult(0.0, 0, 0, 0.0, "no pgbench for this scenario")
        except BenchError as exc:  # e.g. the shared server ran out of connections
            pg = harness.PgbenchResult(0.0, 0, 0, 0.0, str(exc))
        if scn.pays:
            self.accepted["pgbench:" + tag] = pg.transactions
        point = report.Point(scn.key, scn.label, conns, res.rps, res.p50_ms, res.p99_ms,
                             res.unexpected((409,) if scn.pays else ()), res.count(409),
                             pg.tps, pg.failed, split, floor_rps=floor)
        if not pg.tps and scn.pgbench:
            point.notes.append("pgbench did not run: " + pg.output.strip().splitlines()[-1])
        if res.wrapped or res.dup:
            point.notes.append(f"{res.dup} webhook bodies were sent twice (file ran out)")
        odd = {c: n for c, n in res.status.items() if not 200 <= c < 300}
        if odd or res.socket_errors:
            point.notes.append(f"non-2xx {odd}, socket errors {res.socket_errors}")
        self.points.append(point)
        print(f"  {scn.label:<42} c={conns:<3} {split:>5} {point.rps:6,.0f} req/s "
              f"({point.floor_ratio:.2f} of hello) "
              f"p50 {point.p50_ms:6.1f}  p99 {point.p99_ms:7.1f} ms  err {point.errors}  | "
              f"pgbench {pg.tps:8,.0f} tps  ({point.ratio:.0%}) {'; '.join(point.notes)}",
              flush=True)

    def cpu_now(self) -> dict[str, dict[int, float]]:
        """CPU seconds used so far by each process of each group."""
        groups = {"workers": self.app.worker_pids(), "PostgreSQL": harness.postgres_pids(),
                  **{name: [pid] for name, pid in self.helpers.items()}}
        return {name: {pid: harness.cpu_seconds(pid) for pid in pids}
                for name, pids in groups.items()}

    def cpu_per_request(self, before: dict[str, dict[int, float]],
                        requests: int) -> dict[str, float]:
        """Each group's CPU since `before`, in ms per request (a process started since
        counts whole)."""
        after = self.cpu_now()
        return {name: sum(cpu - before.get(name, {}).get(pid, 0.0)
                          for pid, cpu in pids.items()) * 1000 / max(requests, 1)
                for name, pids in after.items()}

    def cpu_note(self) -> str:
        """CPU per payment without and with the endpoint, by the processes serving it (the
        load generator left out)."""
        parts = []
        for conns in CONNECTIONS:
            without, with_ = self.cpu.get(("pay_spread", conns)), self.cpu.get((EVENTS.key, conns))
            if not (without and with_):
                continue
            names = [*without, *(n for n in with_ if n not in without)]
            rows = ", ".join(f"{n} {without.get(n, 0.0):.2f} → {with_[n]:.2f}" for n in names)
            parts.append(f"at {conns}: {rows} (total {sum(without.values()):.2f} → "
                         f"{sum(with_.values()):.2f})")
        return ("events: CPU per payment in ms (user + system, over wrk's whole run), "
                "without → with the endpoint: " + "; ".join(parts)) if parts else ""

    def events_scenario(self, db: seed.Database) -> list[str]:
        """EVENTS with a receiver subscribed; the delivery queue's age sampled throughout."""
        import threading

        port = harness.free_port()
        log = (self.workdir / "receiver.log").open("wb")
        receiver = subprocess.Popen([sys.executable, "-m", "app", "receive-events", "--port",
                                     str(port), "--quiet"], cwd=ROOT, stdout=log,
                                    stderr=subprocess.STDOUT)
        deliverer = subprocess.Popen([sys.executable, "-m", "app", "deliver"], cwd=ROOT,
                                     env=self.app.env, stdout=log, stderr=subprocess.STDOUT)
        headers = {"Authorization": f"Bearer {self.token}"}
        ages: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            sampler = seed.Database(self.db_url)
            while not stop.is_set():
                age = sampler.rows("SELECT EXTRACT(EPOCH FROM now() - min(created_at)) "
                                   "FROM deliveries WHERE status = 'pending'")[0][0]
                ages.append(float(age or 0))
                time.sleep(0.25)
            sampler.close()

        self.helpers = {"deliver": deliverer.pid, "receiver": receiver.pid}
        try:
            time.sleep(1)
            r = httpx.post(f"{self.app.url}/webhook-endpoints", headers=headers, json={
                "url": f"http://127.0.0.1:{port}/", "event_types": ["*"]}, timeout=30)
            if r.status_code != 201:
                raise BenchError(f"could not add the endpoint: {r.status_code} {r.text[:300]}")
            thread = threading.Thread(target=sample, daemon=True)
            thread.start()
            self.scenario(EVENTS)
            drained = time.monotonic()
            while db.rows("SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0]:
                if time.monotonic() - drained > 120:
                    break
                time.sleep(0.25)
            drained = time.monotonic() - drained
            stop.set()
            thread.join()
            counts = dict(db.rows("SELECT status, count(*) FROM deliveries GROUP BY status"))
            httpx.delete(f"{self.app.url}/webhook-endpoints/{r.json()['id']}", headers=headers,
                         timeout=30)
        finally:
            stop.set()
            self.helpers = {}
            for process in (deliverer, receiver):
                process.terminate()
                process.wait(10)
            log.close()
        self.queue_age_s = max(ages, default=0.0)
        with_events = {p.conns: p.rps for p in self.points if p.key == EVENTS.key}
        without = {p.conns: p.rps for p in self.points if p.key == "pay_spread"}
        change = ", ".join(f"{with_events[c]:,.0f} vs {without[c]:,.0f} req/s = "
                           f"{with_events[c] / without[c] - 1:+.0%} at {c}"
                           for c in with_events if without.get(c))
        return [f"events: payments with 1 endpoint subscribed vs none: {change}; deliveries "
                f"{counts}; oldest pending delivery during the load at most "
                f"{max(ages, default=0):.1f} s (sampled every 0.25 s); queue empty "
                f"{drained:.1f} s after the load", *filter(None, [self.cpu_note()])]

    def keepalive_probe(self) -> str:
        """GET /health over one keep-alive connection: the HTTP floor, no database."""
        res = harness.run_wrk(self.wrk_path, "list.lua", self.app.url, 1, 2, 1, ["/health"],
                              self.token, threads=1)
        return (f"GET /health over one keep-alive connection (no database): {res.rps:,.0f} "
                f"req/s, p50 {res.p50_ms:.1f} ms (a p50 near 40 ms would be Nagle's "
                "algorithm waiting on the client's delayed ACK; see docs/PERFORMANCE.md)")

    def scenario(self, scn: Scenario) -> None:
        for i, conns in enumerate(CONNECTIONS):
            self.point(scn, conns, warm_up=i == 0)

    def use_cursor(self, db: seed.Database) -> None:
        self.cursor = db.deep_cursor(0.9)
        r = httpx.get(f"{self.app.url}/invoices",
                      params={"limit": PAGE, "cursor": self.cursor.value},
                      headers={"Authorization": f"Bearer {self.token}"}, timeout=30)
        if r.status_code != 200 or len(r.json()["data"]) != PAGE or not r.json()["next_cursor"]:
            raise BenchError(f"the deep cursor does not give a full page: {r.status_code} "
                             f"{r.text[:300]}")

    def profile(self, scenarios: list[Scenario], out: Path) -> None:
        import profiling

        py_spy = profiling.ensure_py_spy()
        pids = self.app.worker_pids()
        seconds = self.cfg.profile_seconds
        for scn in scenarios:
            raws = [self.workdir / f"profile-{scn.key}-{pid}.folded" for pid in pids]
            with ThreadPoolExecutor(1 + len(pids)) as pool:
                load = pool.submit(self.wrk, scn, CONNECTIONS[0], seconds + 2,
                                   f"profile:{scn.key}")
                time.sleep(1)
                split = "/".join(map(str, self.app.connection_split()))
                spies = list(pool.map(lambda a: profiling.record(py_spy, *a, seconds),
                                      zip(pids, raws, strict=True)))
                load.result()
            for spy, raw in zip(spies, raws, strict=True):
                if spy.returncode != 0 or not raw.exists():
                    raise BenchError(f"py-spy failed: {spy.stderr[-2000:]}")
            with out.open("a") as f:
                f.write(profiling.summarize(
                    raws, f"{scn.label}, {CONNECTIONS[0]} connections ({split} per worker); "
                    f"raw stacks: {', '.join(str(r.relative_to(ROOT)) for r in raws)}") + "\n")
        print(f"profiles: {out}")


_KEYS = [*(scn.key for scn in SCENARIOS), EVENTS.key, "list_first", "list_deep"]


def _keys(value: str) -> set[str]:
    keys = {k.strip() for k in value.split(",") if k.strip()}
    if unknown := keys - set(_KEYS):
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {', '.join(sorted(unknown))}; "
                                         f"known: {', '.join(_KEYS)}")
    return keys | ({"pay_spread"} if EVENTS.key in keys else set())


def check_ledger(db: seed.Database, accepted: dict[str, int]) -> tuple[bool, list[str]]:
    """The invoices' sums against the payments wrk (201s, fresh webhooks) and pgbench saw."""
    recovered, ledger = db.ledger()
    counted = sum(accepted.values())
    expected = counted * seed.PAYMENT_MINOR
    by_source = {
        "API 201s": sum(n for t, n in accepted.items()
                        if t.startswith(("pay_", "profile:pay"))),
        "webhook 200s (new events)": sum(n for t, n in accepted.items()
                                         if t.startswith(("webhook", "profile:webhook"))),
        "pgbench transactions": sum(n for t, n in accepted.items() if t.startswith("pgbench")),
    }
    lines = [f"sum of invoices' amount_recovered: {recovered:,} minor units; accepted payments "
             f"of {seed.PAYMENT}: {counted:,} ("
             + ", ".join(f"{k} {v:,}" for k, v in by_source.items())
             + f") × {seed.PAYMENT_MINOR} = {expected:,}: "
             + ("equal" if recovered == expected else "**NOT EQUAL**")]
    ok = recovered == expected
    for tag in sorted(set(accepted) | set(ledger)):
        rows = ledger.get(tag, (0, 0))[0]
        if rows != accepted.get(tag, 0):
            ok = False
            lines.append(f"{tag}: counted {accepted.get(tag, 0)}, ledger rows {rows}")
    return ok, lines


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    return (f"{cpu}, {len(Path('/proc/cpuinfo').read_text().split('processor')) - 1} cores, "
            f"Python {platform.python_version()}")


def replica_main(cfg: Config, argv: list[str] | None) -> int:
    """GET /invoices/{id} and the list's first page, reading from the primary, then from a
    synchronous hot standby; pgbench reads from the same server as the app."""
    from tests.clusters import Pair, why_not

    if why_not():
        raise BenchError(f"--replica needs two local clusters: {why_not()}")
    started = time.monotonic()
    workdir = ROOT / "bench" / "results" / "run.tmp"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    pair = Pair()
    try:
        db_url = harness.recreate_database(pair.primary.url(), DB_NAME)
        replica_url = harness.with_database(pair.standby.url(), DB_NAME)
        app_secrets = {"SECRET_KEY": secrets.token_urlsafe(36),
                       "WEBHOOK_SECRET": secrets.token_urlsafe(36)}
        env = harness.app_env(db_url, app_secrets)
        password = secrets.token_urlsafe(18)
        made = harness.run_cli(env, "create-admin", "--username", ADMIN[0], "--email",
                               ADMIN[1], f"--password={password}")  # may begin with "-"
        if made.returncode != 0:
            raise BenchError(f"create-admin failed:\n{made.stdout}{made.stderr}")
        db = seed.Database(db_url)
        db.seed_base()
        db.top_up(10_000)
        db.close()
        points: list[report.Point] = []
        for where, read_url in (("primary", None), ("replica", replica_url)):
            app_env = dict(env, **({"READ_DATABASE_URL": read_url} if read_url else {}))
            app = AppServer(app_env, workdir / f"app-{where}.log")
            try:
                app.wait_ready()
                run = Run(cfg, app, app.login(ADMIN[0], password), read_url or db_url,
                          workdir, app_secrets["WEBHOOK_SECRET"])
                for scn in (BY_KEY["get_invoice"], list_scenarios("10k")[0]):
                    run.scenario(Scenario(f"{scn.key}@{where}", f"{scn.label}, from the "
                                          f"{where}", scn.lua, scn.pgbench, scn.wrk_args,
                                          scn.pg_vars))
                points += run.points
            finally:
                app.stop()
        version = harness.postgres_version(db_url)
    finally:
        pair.close()
    command = " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    intro = (f"`{command}` on {machine()}; {version}, a primary and a hot standby "
             "replicating synchronously (remote_apply) on the same machine, both with "
             "fsync off. wrk and pgbench as in the main benchmark; pgbench reads from the "
             f"server the app reads from. Run took {(time.monotonic() - started) / 60:.1f} "
             "min.")
    text = report.document(f"Benchmark {date.today()}: reads with a replica", intro, points,
                           [], "10k", [])
    print("\n" + text)
    results = ROOT / "bench" / "results" / f"{date.today()}-replica.md"
    results.write_text(text)
    print(f"written to {results.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="~3 s per point, 100k big list")
    parser.add_argument("--profile", action="store_true",
                        help="also py-spy the workers during five scenarios")
    parser.add_argument("--keep-db", action="store_true", help=f"keep {DB_NAME} afterwards")
    parser.add_argument("--launcher", choices=sorted(harness.LAUNCHERS), default="serve",
                        help="serve (default): python -m app serve --workers 2, as the "
                        "Docker image runs it (connections dealt evenly to the workers); "
                        "uvicorn: uvicorn's own --workers 2 (one shared socket); granian: "
                        "granian --workers 2")
    parser.add_argument("--only", type=_keys, default=None, metavar="KEY[,KEY]",
                        help="these scenarios only: " + ", ".join(_KEYS) + " (pay_events "
                        "brings pay_spread, its baseline); results go to <date>-only.md")
    parser.add_argument("--replica", action="store_true",
                        help="the read scenarios without and with a replica "
                        "(READ_DATABASE_URL); results go to <date>-replica.md")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.replica:
        return replica_main(cfg, argv)
    wanted: Callable[[str], bool] = (lambda key: key in args.only) if args.only else \
        (lambda key: True)
    started = time.monotonic()
    harness.find_wrk()
    harness.find_pgbench()
    workdir = ROOT / "bench" / "results" / "run.tmp"  # logs, webhook bodies (git-ignored)
    shutil.rmtree(workdir, ignore_errors=True)  # the last run's files only
    workdir.mkdir(parents=True)
    for scn in SCENARIOS:  # fail early on a broken template, before seeding anything
        if scn.pgbench:
            harness.render_pgbench(scn.pgbench, workdir)

    fresh = harness.fresh_app_database(DB_NAME, ADMIN)
    server, db_url, app_secrets, env = fresh.server, fresh.url, fresh.secrets, fresh.env
    pg_version = harness.postgres_version(db_url)
    db = seed.Database(db_url)
    db.seed_base()
    app = AppServer(env, workdir / "app.log", launcher=args.launcher)
    hello: AppServer | None = None
    notes = [f"database: `{DB_NAME}` on {harness.redacted(server)}; app started with "
             f"--launcher {args.launcher}"]
    if args.quick:
        notes.append(f"quick mode: the big list scenarios have {cfg.big:,} invoices, not "
                     "1,000,000 (seeding a million takes about a minute)")
    try:
        app.wait_ready()
        run = Run(cfg, app, app.login(*fresh.admin), db_url, workdir,
                  app_secrets["WEBHOOK_SECRET"])
        print(f"app on {app.url}, workers {app.worker_pids()}; "
              f"{cfg.seconds} s per point", flush=True)
        notes.append(run.keepalive_probe())
        print(notes[-1], flush=True)
        hello = AppServer(env, workdir / "hello.log", launcher=args.launcher,
                          factory="bench.hello:create_app")
        hello.wait_ready()
        run.measure_floor(hello)
        for scn in SCENARIOS:
            if wanted(scn.key):
                run.scenario(scn)
        if wanted(EVENTS.key):
            notes += run.events_scenario(db)
            print(notes[-1], flush=True)
        for size, label in ((10_000, "10k"), (cfg.big, cfg.big_label)):
            if not any(wanted(scn.key.split("@")[0]) for scn in list_scenarios(label)):
                continue
            took = db.top_up(size)
            notes.append(f"seeded to {size:,} invoices (generate_series INSERT + ANALYZE) "
                         f"in {took:.1f} s")
            print(notes[-1], flush=True)
            run.use_cursor(db)
            for scn in list_scenarios(label):
                if wanted(scn.key.split("@")[0]):
                    run.scenario(scn)
        if run.floors:
            notes.append(run.floor_note())
        memory = {pid: harness.memory_kib(pid) for pid in app.worker_pids()}
        if args.profile:
            prof = ROOT / "bench" / "results" / f"profile-{date.today()}.txt"
            prof.unlink(missing_ok=True)
            try:
                run.profile([BY_KEY["health"], BY_KEY["get_invoice"], BY_KEY["pay_spread"],
                             BY_KEY["webhook"], list_scenarios(cfg.big_label)[0]], prof)
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                print(f"WARNING: profiling failed, results kept: {exc}")
    finally:
        app.stop()
        if hello is not None:
            hello.stop()

    reconcile = harness.run_cli(env, "reconcile")
    ledger_ok, ledger_lines = check_ledger(db, run.accepted)
    db.close()
    if not args.keep_db:
        harness.drop_database(server, DB_NAME)
    command = " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    intro = (f"`{command}` on {machine()}; {pg_version}. wrk ({harness.WRK_THREADS} threads) "
             f"and pgbench (-M prepared, {harness.PGBENCH_THREADS} threads) with as many "
             f"connections/clients as the conns column; {cfg.seconds} s per API point (after "
             f"a {cfg.warmup} s warm-up per scenario), {cfg.pg_seconds} s per pgbench point. "
             f"Run took {(time.monotonic() - started) / 60:.1f} min.")
    checks = [f"`python -m app reconcile`: exit {reconcile.returncode}, "
              f"{(reconcile.stdout.strip().splitlines() or ['no output'])[-1]}",
              *ledger_lines,
              "memory per worker: " + ", ".join(
                  f"pid {pid}: RSS {m['VmRSS'] / 1024:.0f} MiB (peak {m['VmHWM'] / 1024:.0f} MiB)"
                  for pid, m in memory.items()),
              *notes]
    title = f"Benchmark {date.today()}{' (quick)' if args.quick else ''}"
    rss = [m["VmRSS"] / 1024 for m in memory.values()]
    text = report.document(title, intro, run.points, rss, cfg.big_label, checks,
                           run.queue_age_s)
    print("\n" + text)
    suffix = ("-quick" if args.quick else "") + ("-only" if args.only else "") + \
        (f"-{args.launcher}" if args.launcher != "serve" else "")
    results = ROOT / "bench" / "results" / f"{date.today()}{suffix}.md"
    results.write_text(text)
    print(f"written to {results.relative_to(ROOT)}")
    return 0 if reconcile.returncode == 0 and ledger_ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(2)
