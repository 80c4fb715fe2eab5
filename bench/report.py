"""The results: one markdown table, the issue's targets, and the after-run checks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Point:
    key: str  # scenario key, e.g. "pay_hot" or "list_first@1M"
    label: str
    conns: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx other than expected 409s, plus socket errors
    conflicts: int  # 409s (expected for payments)
    pgbench_tps: float
    pgbench_failed: int = 0
    split: str = ""  # client connections per worker during the window, e.g. "16/0"
    notes: list[str] = field(default_factory=list)
    floor_rps: float = 0.0  # the FastAPI hello-world's req/s at these conns, same run

    @property
    def ratio(self) -> float:
        return self.rps / self.pgbench_tps if self.pgbench_tps else 0.0

    @property
    def floor_ratio(self) -> float:
        return self.rps / self.floor_rps if self.floor_rps else 0.0

    @property
    def balanced(self) -> bool:
        """No worker held more than 60% of the client connections."""
        held = [int(n) for n in self.split.split("/") if n.isdigit()]
        return not held or sum(held) == 0 or max(held) <= 0.6 * sum(held)


def table(points: list[Point]) -> str:
    lines = ["| scenario | conns | per worker | API req/s | ÷ hello | p50 ms | p99 ms | errors "
             "| 409s | pgbench tps | API/pgbench |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for p in points:
        pg = f"{p.pgbench_tps:,.0f}" + (f" ({p.pgbench_failed} failed)" if p.pgbench_failed
                                        else "") if p.pgbench_tps else "n/a"
        ratio = f"{p.ratio:.0%}" if p.pgbench_tps else "n/a"
        floor = f"{p.floor_ratio:.2f}" if p.floor_rps else "n/a"
        lines.append(f"| {p.label} | {p.conns} | {p.split} | {p.rps:,.0f} | {floor} | "
                     f"{p.p50_ms:.1f} | "
                     f"{p.p99_ms:.1f} | {p.errors} | {p.conflicts} | {pg} | {ratio} |")
    return "\n".join(lines)


def _find(points: list[Point], key: str) -> list[Point]:
    return [p for p in points if p.key == key]


def targets(points: list[Point], rss_mib: list[float], big: str,
            queue_age_s: float | None = None) -> list[tuple[str, str, bool]]:
    """(target, what was measured, met) for each of the issue's targets."""
    out = []
    for key, what, floor in (("health", "GET /health ≥ 0.85 of hello-world", .85),
                             ("get_invoice", "GET /invoices/{id} ≥ 0.30 of hello-world", .30),
                             ("pay_spread", "payment, 1,000 invoices ≥ 0.20 of hello-world",
                              .20),
                             ("webhook", "webhook payment success ≥ 0.12 of hello-world", .12),
                             ("list_", "list pages of 50 ≥ 0.08 of hello-world", .08)):
        pts = [p for p in points if p.floor_rps and (
            p.key.startswith(key) if key.endswith("_") else p.key == key)]
        if pts:
            measured = ", ".join(f"{p.floor_ratio:.2f} at {p.conns}"
                                 + (f" ({p.key.split('_', 1)[1]})" if key == "list_" else "")
                                 for p in pts)
            out.append((what, measured, all(p.floor_ratio >= floor for p in pts)))
    hot = [p for p in _find(points, "pay_hot") if p.pgbench_tps]
    if hot:
        out.append(("hot-invoice payments ≥ 70% of pgbench at 16, ≥ 90% at 64",
                    ", ".join(f"{p.ratio:.0%} at {p.conns}" for p in hot),
                    all(p.ratio >= (.90 if p.conns >= 64 else .70) for p in hot)))
    slow = [p for p in _find(points, "get_invoice") if p.conns >= 64]
    if slow:
        out.append(("p99 of GET /invoices/{id} at 64 connections ≤ 100 ms",
                    ", ".join(f"{p.p99_ms:.1f} ms" for p in slow),
                    all(p.p99_ms <= 100 for p in slow)))
    split = [p for p in points if p.split and p.key != "hello"]
    if split:
        worst = max(split, key=lambda p: max(map(int, p.split.split("/"))) / max(
            1, sum(map(int, p.split.split("/")))))
        out.append(("the workers' connection split within 60/40 at every point",
                    f"{sum(p.balanced for p in split)} of {len(split)} points; worst "
                    f"{worst.split} ({worst.label}, {worst.conns})",
                    all(p.balanced for p in split)))
    for key, what, floor in (("get_invoice", "GET /invoices/{id} ≥ 25% of pgbench reads/s", .25),
                             ("pay_spread", "spread payments ≥ 40% of pgbench", .40)):
        pts = [p for p in _find(points, key) if p.pgbench_tps]
        if pts:
            measured = ", ".join(f"{p.ratio:.0%} at {p.conns}" for p in pts)
            out.append((what, measured, all(p.ratio >= floor for p in pts)))
    for page in ("first", "deep"):
        pairs = [(small, large) for small in _find(points, f"list_{page}@10k")
                 for large in _find(points, f"list_{page}@{big}") if small.conns == large.conns]
        if pairs:
            measured = ", ".join(
                f"{large.p50_ms:.1f}/{small.p50_ms:.1f} ms = {large.p50_ms / small.p50_ms:.2f}× "
                f"at {small.conns}" for small, large in pairs)
            out.append((f"list {page} page: p50 at {big} ≤ 1.3× p50 at 10k", measured,
                        all(large.p50_ms <= 1.3 * small.p50_ms for small, large in pairs)))
    pairs = [(on, off) for on in _find(points, "pay_events")
             for off in _find(points, "pay_spread") if on.conns == off.conns]
    if pairs:
        out.append(("payments with 1 endpoint subscribed ≥ 85% of none",
                    ", ".join(f"{on.rps:,.0f}/{off.rps:,.0f} = {on.rps / off.rps:.0%} at "
                              f"{on.conns}" for on, off in pairs),
                    all(on.rps >= .85 * off.rps for on, off in pairs)))
    if queue_age_s is not None:
        out.append(("oldest pending delivery during the load < 5 s", f"{queue_age_s:.1f} s",
                    queue_age_s < 5))
    errors = sum(p.errors for p in points)
    failed = sum(p.pgbench_failed for p in points)
    out.append(("zero errors other than expected 409s",
                f"{errors} API error(s); pgbench: {failed} failed", errors == 0))
    if rss_mib:
        out.append(("memory per worker < 150 MB (RSS after the run)",
                    ", ".join(f"{m:.0f} MiB" for m in rss_mib), max(rss_mib) < 150))
    return out


def targets_table(rows: list[tuple[str, str, bool]]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in rows]
    return "\n".join(lines)


def document(title: str, intro: str, points: list[Point], rss_mib: list[float], big: str,
             checks: list[str], queue_age_s: float | None = None) -> str:
    """The whole results page: intro, the table, the targets, the checks and notes."""
    notes = [f"{p.label} c={p.conns}: {n}" for p in points for n in p.notes]
    lines = [f"# {title}", "", intro, "", table(points), "",
             targets_table(targets(points, rss_mib, big, queue_age_s)), "",
             "Checks after the run:", "",
             *[f"- {c}" for c in checks + notes]]
    return "\n".join(lines) + "\n"
