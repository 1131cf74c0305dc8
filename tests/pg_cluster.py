"""A throwaway PostgreSQL server for tests: initdb in a temporary directory, on 127.0.0.1
and a free port, removed afterwards.

The server binaries are looked for in ``$PG_BINDIR``, ``pg_config --bindir``, the
Debian/Ubuntu layout (``/usr/lib/postgresql/<version>/bin``) and ``PATH``. initdb and
postgres refuse to run as root: then they run as the ``postgres`` user (or ``nobody``),
owning the temporary directory. Without binaries (or without asyncpg) the tests that need
the server are skipped with the reason, except under CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PgCluster", "find_bindir", "pg_cluster", "require_postgres", "shared_cluster"]

_SUPERUSER = "mirror"
_START_TIMEOUT = 30.0


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or ``None``."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
        candidates.extend(p / "bin" for p in versions)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


def require_postgres() -> Path:
    """The server's bin directory; skip the test (fail under CI) when it cannot run."""
    problems = []
    bindir = find_bindir()
    if bindir is None:
        problems.append(
            "PostgreSQL server binaries (initdb, postgres) not found: install the "
            "postgresql package, or set PG_BINDIR"
        )
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        problems.append("asyncpg is not installed: pip install -e '.[dev]'")
    if problems:
        reason = "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
        pytest.skip(reason)
    assert bindir is not None
    return bindir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged() -> pwd.struct_passwd | None:
    """The account to run the server as when we are root (``None`` when we are not)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists")


class PgCluster:
    """A running server; :meth:`url` gives a database's URL, :meth:`create_database`
    makes a fresh one."""

    def __init__(self, bindir: Path, root: Path, port: int, user: pwd.struct_passwd | None):
        self.bindir = bindir
        self.root = root
        self.port = port
        self._user = user
        self._server: subprocess.Popen[bytes] | None = None
        self._databases = 0

    def _run_as(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def start(self) -> None:
        data = self.root / "data"
        log = self.root / "initdb.log"
        with open(log, "wb") as out:
            subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    _SUPERUSER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
                cwd=self.root,
                **self._run_as(),  # type: ignore[arg-type]
            )
        server_log = open(self.root / "server.log", "wb")  # noqa: SIM115 - lives with the server
        self._server = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                # A test cluster: speed over durability of the server itself (the tests
                # kill the mirror, never the server).
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **self._run_as(),  # type: ignore[arg-type]
        )
        server_log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._server.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log_tail()}")
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                ready = subprocess.run(
                    [
                        str(self.bindir / "pg_isready"),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                        "-U",
                        _SUPERUSER,
                    ],
                    capture_output=True,
                    timeout=10,
                )
                if ready.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None or server.poll() is not None:
            return
        server.terminate()  # smart shutdown is slow with idle clients; fast is SIGINT
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)
            return
        server.kill()
        server.wait(timeout=10)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        """A new empty database; its URL."""
        import asyncpg

        self._databases += 1
        name = f"mirror_{self._databases}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return self.url(name)


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """Start a throwaway server; stop it and remove its directory afterwards."""
    bindir = require_postgres()
    user = _unprivileged()
    root = Path(tempfile.mkdtemp(prefix="margin-pg-"))
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = PgCluster(bindir, root, _free_port(), user)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


_SHARED: list[PgCluster] = []


def shared_cluster() -> PgCluster:
    """One server for every test module of this process (started on first use, stopped
    and removed when the process exits); tests get fresh databases from it."""
    if not _SHARED:
        manager = pg_cluster()
        _SHARED.append(manager.__enter__())
        atexit.register(manager.__exit__, None, None, None)
    return _SHARED[0]
