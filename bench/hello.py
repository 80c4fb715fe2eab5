"""The floor: a FastAPI hello-world, served by the benchmark exactly as the app is (same
server, launcher, worker count and flags), so every scenario can be read as a share of what
FastAPI itself manages on this machine (bench/run.py's "÷ hello" column)."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/ready")  # what the harness waits for before a run
    async def ready() -> dict[str, bool]:
        return {"ok": True}

    return app
