"""The interpreter's settings for the app's long-running processes (an API worker, `deliver`)."""

from __future__ import annotations

import gc

# CPython collects its youngest generation after 700 new container objects (2,000 from
# 3.13). A list page of 50 invoices makes about a thousand (records, dicts, strings in
# dicts), so a worker ran a collection on nearly every request, and an older one every few;
# the app makes almost no reference cycles for them to find. Measured on the list page
# under load, 3 alternating rounds: +5% req/s at 16 connections, +8% at 64
# (docs/PERFORMANCE.md). Objects in cycles now wait longer to be freed: up to 20,000 new
# objects for the youngest generation, and full collections (every 50 × 100 young ones)
# become rare; a worker's RSS stayed within 93–111 MiB in the benchmark's full run.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
