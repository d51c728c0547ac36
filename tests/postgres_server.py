"""A real PostgreSQL server for the store's tests: Debian's binaries, a throw-away cluster started here.

The cluster lives in a temporary folder (data and unix socket) and listens on no TCP address: nothing can clash
with another server's port (the port number only names the socket). It trusts local connections, and is stopped
and deleted when the test session ends, also when it ends badly (atexit). Each test gets a database of its own
(``create_database``).

``initdb`` and ``postgres`` refuse to run as root (CI runs as root): then they run as the ``postgres`` user,
which Debian's package creates, through ``runuser``, and the folder is handed to that user.

No PostgreSQL found, or a cluster that does not start, is an error that names the fix, never a skip: ``make
test`` installs Debian's ``postgresql`` when it is missing.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

START_TIMEOUT_S = 120          # pg_ctl -w: a cold start on a loaded 2-core machine
STOP_TIMEOUT_S = 60
SUPERUSER = "postgres"
# no TCP listener: the port only names the socket file, in a folder of this cluster's own, so it cannot clash
SOCKET_PORT = 5432

_STARTED: set[PostgresServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_STARTED):
        server.stop()


class PostgresUnavailable(RuntimeError):
    """No usable PostgreSQL on this machine, or the cluster did not start; the message says what to do."""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name)) or (0,)


def find_bindir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: $FHIR_PAIN_PG_BINDIR, else Debian's newest
    /usr/lib/postgresql/N/bin, else both on PATH."""
    wanted = os.environ.get("FHIR_PAIN_PG_BINDIR")
    candidates = [wanted] if wanted else [
        str(Path(p).parent) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key,
                                            reverse=True)]
    if not wanted and (initdb := shutil.which("initdb")):
        candidates.append(str(Path(initdb).resolve().parent))
    for folder in candidates:
        if all(os.access(Path(folder) / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH"
        + (f" (FHIR_PAIN_PG_BINDIR={wanted})" if wanted else "")
        + ": install Debian's postgresql (`apt-get install postgresql`; `make test` does it)")


class PostgresServer:
    def __init__(self, bindir: Path | None = None):
        self.bindir = bindir or find_bindir()
        self.as_root = os.geteuid() == 0
        self.root: Path | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        # not pytest's tmp_path: it sits in a folder only its owner may enter, and the cluster may belong to
        # the postgres user
        self.root = Path(tempfile.mkdtemp(prefix="fhir-pain-pg-"))
        self.data, self.socket_dir, self.log = self.root / "data", self.root / "socket", self.root / "server.log"
        self.socket_dir.mkdir()
        self.port = SOCKET_PORT
        _STARTED.add(self)
        try:
            if self.as_root:
                self._hand_to_postgres_user()
            self._run("initdb", "--pgdata", str(self.data), "--username", SUPERUSER, "--auth", "trust",
                      "--encoding", "UTF8", "--locale", "C", "--no-sync", timeout=START_TIMEOUT_S)
            options = (f"-c listen_addresses='' -p {self.port} -k {self.socket_dir} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            self._run("pg_ctl", "start", "--pgdata", str(self.data), "--wait", "--timeout", str(START_TIMEOUT_S),
                      "--log", str(self.log), "-o", options, timeout=START_TIMEOUT_S + 30)
        except BaseException as exc:
            tail = self.log_tail()
            self.stop()
            if isinstance(exc, (subprocess.CalledProcessError, subprocess.TimeoutExpired)):
                output = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else ""
                raise PostgresUnavailable(f"PostgreSQL did not start ({exc}):\n{output}\n{tail}") from None
            raise
        return self

    def stop(self) -> None:
        _STARTED.discard(self)
        root, self.root = self.root, None
        if root is None:
            return
        try:
            if (root / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "--pgdata", str(root / "data"), "--mode", "fast", "--wait",
                          "--timeout", str(STOP_TIMEOUT_S), timeout=STOP_TIMEOUT_S + 30, check=False)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start the same cluster (a database that goes away and comes back): pooled connections break."""
        self._run("pg_ctl", "restart", "--pgdata", str(self.data), "--mode", "fast", "--wait", "--timeout",
                  str(START_TIMEOUT_S), "--log", str(self.log), timeout=START_TIMEOUT_S + 30)

    # -- databases ----------------------------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL over the unix socket (psycopg 3, SQLAlchemy's default PostgreSQL driver)."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:16]
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.split("?")[0].rsplit("/", 1)[-1]   # the socket folder in the query has slashes of its own
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg
        with psycopg.connect(host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True, connect_timeout=30) as conn:
            conn.execute(sql)

    # -- helpers ------------------------------------------------------------------------------------------------
    def _hand_to_postgres_user(self) -> None:
        try:
            user = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise PostgresUnavailable("running as root, but there is no 'postgres' user to run the server as "
                                      "(Debian's postgresql package creates it)") from None
        for path in (self.root, self.socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        # the postgres user must reach the folder through its parents (/tmp is open to everyone)
        probe = subprocess.run(["runuser", "-u", SUPERUSER, "--", "test", "-w", str(self.root)],
                               capture_output=True)
        if probe.returncode != 0:
            raise PostgresUnavailable(f"the postgres user cannot write {self.root}: set TMPDIR to a folder it "
                                      "can reach")

    def _run(self, tool: str, *args: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout, cwd=self.root or "/")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except (OSError, AttributeError):
            return ""

