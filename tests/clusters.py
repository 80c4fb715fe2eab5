"""PostgreSQL clusters of a test's own: a primary and a hot standby made from it with
`pg_basebackup -R -X stream`, replicating synchronously (`remote_apply`), on two local
ports. Made with the server binaries of the machine's PostgreSQL (`/usr/lib/postgresql/*/
bin`), run as the `postgres` user when the tests run as root (initdb refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras

from tests.support import free_port

TOOLS = ("initdb", "pg_ctl", "pg_basebackup")
STANDBY_NAME = "standby"


def server_binaries() -> Path | None:
    """The newest folder holding PostgreSQL's server tools, or None."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    on_path = shutil.which("pg_ctl")
    if on_path:
        found.insert(0, Path(on_path).parent)
    for folder in reversed(found):
        if all((folder / tool).exists() for tool in TOOLS):
            return folder
    return None


def _owner() -> str | None:
    """Whom the clusters run as: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


def why_not() -> str | None:
    """Why clusters cannot be made here, or None."""
    if server_binaries() is None:
        return ("PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup) are not "
                "installed: apt install postgresql, or put their folder on PATH")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser, and initdb refuses to run as root"
    return None


class Cluster:
    def __init__(self, root: Path, name: str, port: int) -> None:
        self.root, self.name, self.port = root, name, port
        self.data = root / name
        self.log = root / f"{name}.log"
        self.bin = server_binaries()
        assert self.bin is not None

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / tool), *args]
        owner = _owner()
        if owner:
            cmd = ["runuser", "-u", owner, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{done.stdout}{done.stderr}\n"
                               f"{self.log.read_text() if self.log.exists() else ''}")
        return done

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def configure(self, **settings: Any) -> None:
        with open(self.data / "postgresql.auto.conf", "a") as f:
            for key, value in settings.items():
                f.write(f"{key} = {value!r}\n" if isinstance(value, str) else
                        f"{key} = {value}\n")

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def rows(self, sql: str, params: tuple = (), database: str = "postgres") -> list[dict]:
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname=database, connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql, params)
                return [dict(r) for r in cur.fetchall()] if cur.description else []
        finally:
            conn.close()


class Pair:
    """A primary and its synchronous hot standby, in a temporary folder."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="payapp-replication-"))
        self.root.chmod(0o755)
        owner = _owner()
        if owner:
            shutil.chown(self.root, owner)
        self.primary = Cluster(self.root, "primary", free_port())
        self.standby = Cluster(self.root, "standby", free_port())
        p = self.primary
        p.run("initdb", "-D", str(p.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--no-instructions")
        p.configure(port=p.port, listen_addresses="127.0.0.1",
                    unix_socket_directories=str(self.root), wal_level="replica",
                    max_wal_senders=4, hot_standby="on", max_connections=100,
                    shared_buffers="32MB", fsync="off",
                    synchronous_standby_names=STANDBY_NAME,
                    synchronous_commit="remote_apply")
        p.start()
        s = self.standby
        s.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(p.port), "-U", "postgres",
              "-D", str(s.data), "-X", "stream", "-R")
        # The copy carries the primary's settings; the standby gets its own port, names
        # itself for synchronous_standby_names, and waits for no standby of its own once
        # promoted (else every commit after the failover would wait forever).
        s.configure(port=s.port, synchronous_standby_names="",
                    primary_conninfo=f"host=127.0.0.1 port={p.port} user=postgres "
                                     f"application_name={STANDBY_NAME}")
        s.start()
        self.wait_for_sync()

    def wait_for_sync(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.primary.rows("SELECT sync_state FROM pg_stat_replication "
                                     "WHERE application_name = %s", (STANDBY_NAME,))
            if rows and rows[0]["sync_state"] == "sync":
                return
            time.sleep(0.1)
        raise RuntimeError("the standby did not become synchronous:\n" +
                           self.standby.log.read_text())

    def multi_host_url(self, database: str) -> str:
        """Both servers, the writable one chosen at connect time."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:"
                f"{self.standby.port}/{database}?target_session_attrs=read-write")

    def close(self) -> None:
        for cluster in (self.standby, self.primary):
            cluster.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
