"""Throwaway local PostgreSQL clusters for tests, CI and the quick start.

``DevCluster.start()`` runs ``initdb`` into ``<base_dir>/data`` and starts a server that
listens only on 127.0.0.1, on a free port, with a superuser ``fraiseql`` whose random
password is stored in ``<base_dir>/state.json``.  Durability is switched off for speed: never
keep data you care about in one.

PostgreSQL refuses to run as root.  When this process is root, ``initdb`` and ``pg_ctl`` run
as the ``postgres`` system user (else ``nobody``) through ``runuser`` (else ``su``), and the
cluster directory is handed to that user.

Command line (``--dir`` holds the cluster; ``start`` prints only the URL on stdout, or with
``--export`` two shell lines for ``eval "$(...)"``: ``export DATABASE_URL=...`` and
``export FRAISEQL_DEVDB_DIR=...``)::

    python -m fraiseql_alembic.devdb start [--dir DIR] [--port PORT] [--export]
    python -m fraiseql_alembic.devdb url --dir DIR
    python -m fraiseql_alembic.devdb stop --dir DIR [--remove]

Importing this module has no side effects.
"""

from __future__ import annotations

import importlib
import json
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

__all__ = ["DevCluster", "DevDBError", "find_pg_bindir", "main"]

SUPERUSER = "fraiseql"
STATE_FILE = "state.json"
LOG_FILE = "postgresql.log"
_CONF_FILE = "fraiseql_devdb.conf"
_PG_TIMEOUT = 60  # seconds pg_ctl waits for start/stop
_SUBPROCESS_TIMEOUT = 180
# A Unix socket path (``<dir>/.s.PGSQL.<port>`` plus NUL) must fit in 108 bytes.
_MAX_SOCKET_DIR = 90
_STOP_MODES = ("smart", "fast", "immediate")
#: The variable ``start --export`` sets to the cluster's directory.
DIR_VARIABLE = "FRAISEQL_DEVDB_DIR"


class DevDBError(RuntimeError):
    """A throwaway cluster could not be found, started, reached or stopped."""


def find_pg_bindir() -> Path:
    """Return the directory holding PostgreSQL's server programs (``initdb``, ``pg_ctl``).

    Looks at ``$FRAISEQL_PG_BINDIR``, then ``pg_config --bindir``, then the highest
    ``/usr/lib/postgresql/<version>/bin``; raises :class:`DevDBError` if none has ``initdb``.
    """
    override = os.environ.get("FRAISEQL_PG_BINDIR")
    if override:
        if _has_initdb(Path(override)):
            return Path(override)
        raise DevDBError(
            f"FRAISEQL_PG_BINDIR={override} holds no initdb; "
            "point it at PostgreSQL's bin directory or unset it"
        )
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            found = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            found = ""
        if found and _has_initdb(Path(found)):
            return Path(found)
    candidates = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_initdb(d)]
    if candidates:
        return max(candidates, key=_version_key)
    raise DevDBError(
        "PostgreSQL server programs (initdb) not found; install postgresql "
        "(apt-get install postgresql) or set FRAISEQL_PG_BINDIR to its bin directory"
    )


def _has_initdb(bindir: Path) -> bool:
    return os.access(bindir / "initdb", os.X_OK)


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: compare "9.6" < "10" < "15" as numbers.
    return tuple(int(part) if part.isdigit() else -1 for part in bindir.parent.name.split("."))


class DevCluster:
    """A local PostgreSQL cluster living entirely in ``base_dir``."""

    def __init__(
        self,
        base_dir: Path,
        port: int,
        password: str,
        *,
        bindir: Path,
        os_user: str | None,
        user: str = SUPERUSER,
    ) -> None:
        self.base_dir = base_dir
        self.port = port
        self.password = password
        self.user = user
        self.bindir = bindir
        #: The unprivileged system user running the server when we are root, else ``None``.
        self.os_user = os_user

    def __repr__(self) -> str:
        return f"DevCluster(base_dir={str(self.base_dir)!r}, port={self.port})"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / LOG_FILE

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        base_dir: Path | None = None,
        port: int | None = None,
        *,
        bindir: Path | None = None,
    ) -> DevCluster:
        """Create a new cluster in ``base_dir`` (a fresh temporary directory if ``None``)
        and start it on ``port`` (a free one if ``None``)."""
        bindir = bindir if bindir is not None else find_pg_bindir()
        os_user = _server_os_user()
        if base_dir is None:
            base_dir = _default_base_dir(os_user)
        else:
            base_dir = Path(base_dir).expanduser().resolve()
            if os_user is not None:
                _make_reachable(base_dir, os_user)  # refuse before creating anything
            base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (base_dir / "data").exists():
            raise DevDBError(
                f"{base_dir} already holds a cluster; reuse it with DevCluster.attach() or "
                f"`python -m fraiseql_alembic.devdb start --dir {base_dir}`"
            )
        if os_user is not None:
            _make_reachable(base_dir, os_user)
            _chown(base_dir, os_user)
        base_dir.chmod(0o700)
        cluster = cls(base_dir, port or 0, os.urandom(16).hex(), bindir=bindir, os_user=os_user)
        cluster._initdb()
        cluster._launch(fixed_port=port)
        return cluster

    @classmethod
    def attach(cls, base_dir: Path) -> DevCluster:
        """Re-open the running cluster described by ``<base_dir>/state.json``."""
        cluster = cls._load(base_dir)
        if not cluster.is_running():
            raise DevDBError(
                f"the cluster in {cluster.base_dir} is not running; start it with "
                f"`python -m fraiseql_alembic.devdb start --dir {cluster.base_dir}`"
            )
        return cluster

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; does nothing if it is not running."""
        if mode not in _STOP_MODES:
            raise ValueError(f"mode must be one of {', '.join(_STOP_MODES)}, not {mode!r}")
        if not self.is_running():
            return
        result = self._pg_ctl("stop", "-m", mode, check=False)
        if result.returncode != 0 and self.is_running():
            raise self._failure("stop", result)

    def restart(self) -> None:
        """Restart the server on the same port (``pg_ctl restart -w``)."""
        self._pg_ctl("restart", "-m", "fast", "-l", str(self.log_file))

    # -- databases --------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        return (
            f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/"
            f"{quote(dbname, safe='')}"
        )

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its URL."""
        self._admin("CREATE DATABASE {}", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, ending any sessions still connected to it."""
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    def _admin(self, statement: str, name: str) -> None:
        # psycopg2 ships no type information: importing it by name keeps this module clean
        # under `mypy --strict` without a stubs package, and keeps `import devdb` light.
        psycopg2 = importlib.import_module("psycopg2")
        pg_sql = importlib.import_module("psycopg2.sql")
        query = pg_sql.SQL(statement).format(pg_sql.Identifier(name))
        try:
            conn = psycopg2.connect(self.url("postgres"))
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(query)
            finally:
                conn.close()
        except psycopg2.Error as err:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DevDBError(
                f"{statement.format(name)} failed on port {self.port}: {detail}"
            ) from err

    # -- internals --------------------------------------------------------------------------

    @classmethod
    def _load(cls, base_dir: Path) -> DevCluster:
        base_dir = Path(base_dir).expanduser().resolve()
        try:
            state = json.loads((base_dir / STATE_FILE).read_text(encoding="utf-8"))
            port, password, user = int(state["port"]), str(state["password"]), str(state["user"])
            bindir = Path(state["bindir"]) if state.get("bindir") else None
        except FileNotFoundError:
            raise DevDBError(
                f"no throwaway cluster in {base_dir} ({STATE_FILE} is missing); start one with "
                f"`python -m fraiseql_alembic.devdb start --dir {base_dir}`"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DevDBError(f"{base_dir / STATE_FILE} is unreadable: {err}") from err
        if bindir is None or not _has_initdb(bindir):
            bindir = find_pg_bindir()
        return cls(base_dir, port, password, bindir=bindir, os_user=_server_os_user(), user=user)

    def _initdb(self) -> None:
        pwfile = self.base_dir / "initdb.pw"
        self._write(pwfile, self.password + "\n")
        try:
            result: subprocess.CompletedProcess[str] | None = None
            # C.UTF-8 gives sensible upper()/lower() on non-ASCII text; not every system has it.
            for locale in ("--locale=C.UTF-8", "--no-locale"):
                result = self._run(
                    [
                        str(self.bindir / "initdb"),
                        "-D", str(self.data_dir),
                        "-U", self.user,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "-E", "UTF8",
                        locale,
                        "--no-sync",
                    ],
                )  # fmt: skip
                if result.returncode == 0:
                    break
                shutil.rmtree(self.data_dir, ignore_errors=True)
            else:
                assert result is not None
                raise self._failure("initdb", result)
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"\ninclude '{_CONF_FILE}'\n")

    def _write_settings(self) -> None:
        if len(str(self.socket_dir)) <= _MAX_SOCKET_DIR:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            if self.os_user is not None:
                _chown(self.socket_dir, self.os_user)
            sockets = _conf_string(str(self.socket_dir))
        else:
            sockets = "''"  # path too long for a Unix socket: TCP only
        self._write(
            self.data_dir / _CONF_FILE,
            "# Written by fraiseql_alembic.devdb: a throwaway cluster, fast and NOT durable.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = {sockets}\n"
            "fsync = off\n"
            "full_page_writes = off\n"
            "synchronous_commit = off\n",
        )

    def _launch(self, fixed_port: int | None) -> None:
        """Start the server; with no fixed port, retry on another one if it was taken."""
        result: subprocess.CompletedProcess[str] | None = None
        log_size = 0
        for _attempt in range(1 if fixed_port else 5):
            self.port = fixed_port or _free_port()
            self._write_settings()
            log_size = self.log_file.stat().st_size if self.log_file.exists() else 0
            result = self._pg_ctl("start", "-l", str(self.log_file), check=False)
            if result.returncode == 0:
                self._save_state()
                return
            if fixed_port or "could not bind" not in self._log_tail(log_size):
                break
        assert result is not None
        raise self._failure("start", result, log_size)

    def _save_state(self) -> None:
        state = {
            "port": self.port,
            "password": self.password,
            "user": self.user,
            "os_user": self.os_user,
            "bindir": str(self.bindir),
        }
        tmp = self.base_dir / (STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=2)
            fh.write("\n")
        tmp.replace(self.base_dir / STATE_FILE)

    def _pg_ctl(
        self, action: str, *options: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / "pg_ctl"), action, "-D", str(self.data_dir)]
        if action != "status":
            argv += ["-w", "-t", str(_PG_TIMEOUT), "-s", *options]
        result = self._run(argv)
        if check and result.returncode != 0:
            raise self._failure(action, result)
        return result

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        try:
            return subprocess.run(
                _as_user(argv, self.os_user),
                cwd=self.base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_SUBPROCESS_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DevDBError(f"{Path(argv[0]).name} could not run: {err}") from err

    def _write(self, path: Path, text: str) -> None:
        """Write a private file the server's system user can read."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if self.os_user is not None:
            _chown(path, self.os_user)

    def _log_tail(self, offset: int = 0) -> str:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _failure(
        self, what: str, result: subprocess.CompletedProcess[str], log_offset: int = 0
    ) -> DevDBError:
        output = (result.stderr or result.stdout).splitlines()
        reason = (
            _error_line(output)
            or _error_line(self._log_tail(log_offset).splitlines())
            or next((ln.strip() for ln in reversed(output) if ln.strip()), "no output")
        )
        return DevDBError(
            f"{what} failed (exit {result.returncode}) for {self.data_dir}: {reason}; "
            f"server log: {self.log_file}"
        )


def _error_line(lines: list[str]) -> str | None:
    """The last line of program output or server log that reports an error."""
    for line in reversed(lines):
        if any(word in line.lower() for word in ("error", "fatal", "panic")):
            return line.strip()
    return None


# -- running as an unprivileged user --------------------------------------------------------


def _server_os_user() -> str | None:
    """The system user to run PostgreSQL as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise DevDBError(
        "running as root, but PostgreSQL refuses root and neither a 'postgres' nor a "
        "'nobody' user exists; install postgresql (apt-get install postgresql) or run as "
        "an ordinary user"
    )


def _as_user(argv: list[str], os_user: str | None) -> list[str]:
    if os_user is None:
        return argv
    runuser = _which("runuser")
    if runuser:
        return [runuser, "-u", os_user, "--", *argv]
    su = _which("su")
    if su:
        return [su, "-s", "/bin/sh", os_user, "-c", shlex.join(argv)]
    raise DevDBError(
        f"running as root, but neither runuser nor su is available to run PostgreSQL as "
        f"{os_user!r}; install util-linux or run as an ordinary user"
    )


def _which(program: str) -> str | None:
    # root's PATH may lack the sbin directories where runuser lives.
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _chown(path: Path, os_user: str) -> None:
    entry = pwd.getpwnam(os_user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _can_traverse(directory: Path, os_user: str) -> bool:
    entry = pwd.getpwnam(os_user)
    st = directory.stat()
    if st.st_uid == entry.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in os.getgrouplist(os_user, entry.pw_gid):
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _temp_roots() -> list[Path]:
    return [Path(p).resolve() for p in ("/tmp", "/var/tmp", tempfile.gettempdir())]


def _make_reachable(base_dir: Path, os_user: str) -> None:
    """Let ``os_user`` reach ``base_dir``: a private directory of ours inside a temporary
    directory (``mktemp -d``) gets ``o+x``; anything else we refuse to open up (``/root``,
    home directories).  pytest re-tightens ``/tmp/pytest-of-root`` whenever a session
    starts, so a cluster run as root does not belong under it."""
    for parent in reversed(base_dir.parents):
        if not parent.exists():
            break
        if _can_traverse(parent, os_user):
            continue
        st = parent.stat()
        ours = st.st_uid == os.geteuid()
        if ours and any(root in parent.parents for root in _temp_roots()):
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
            continue
        raise DevDBError(
            f"PostgreSQL must run as the unprivileged user {os_user!r}, which cannot enter "
            f"{parent} (mode {stat.S_IMODE(st.st_mode):o}); put the cluster under /tmp "
            "(for example --dir /tmp/fraiseql-devdb) or leave the directory out"
        )


def _default_base_dir(os_user: str | None) -> Path:
    parent = Path(tempfile.gettempdir()).resolve()
    if os_user is not None and not all(
        _can_traverse(d, os_user) for d in (parent, *parent.parents)
    ):
        parent = Path("/tmp")
    return Path(tempfile.mkdtemp(prefix="fraiseql-devdb-", dir=parent))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _conf_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# -- command line ---------------------------------------------------------------------------


def _start_or_reuse(base_dir: Path | None, port: int | None) -> DevCluster:
    if base_dir is not None and (base_dir / STATE_FILE).exists():
        cluster = DevCluster._load(base_dir)  # noqa: SLF001 (this module's own class)
        if not cluster.is_running():
            cluster._launch(fixed_port=cluster.port)  # noqa: SLF001
        return cluster
    return DevCluster.start(base_dir, port)


def main(argv: list[str] | None = None) -> int:
    import argparse  # lazy: `python -m fraiseql_alembic.devdb` only (the engine loads this module)

    parser = argparse.ArgumentParser(
        prog="python -m fraiseql_alembic.devdb",
        description="Run a throwaway local PostgreSQL cluster (fast, not durable).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser(
        "start", help="start a cluster (or reuse the one in --dir) and print its URL"
    )
    start.add_argument("--dir", type=Path, help="cluster directory (default: a new temp dir)")
    start.add_argument("--port", type=int, help="TCP port on 127.0.0.1 (default: a free one)")
    start.add_argument(
        "--export",
        action="store_true",
        help=f"print `export DATABASE_URL=...` and `export {DIR_VARIABLE}=...` lines "
        '(for eval "$(...)") instead of the URL',
    )
    stop = commands.add_parser("stop", help="stop the cluster in --dir")
    stop.add_argument("--dir", type=Path, required=True, help="cluster directory")
    stop.add_argument("--remove", action="store_true", help="then delete --dir and its data")
    url = commands.add_parser("url", help="print its URL")
    url.add_argument("--dir", type=Path, required=True, help="cluster directory")
    args = parser.parse_args(argv)

    try:
        if args.command == "start":
            cluster = _start_or_reuse(args.dir, args.port)
            if args.export:
                print(f"export DATABASE_URL={shlex.quote(cluster.url())}")
                print(f"export {DIR_VARIABLE}={shlex.quote(str(cluster.base_dir))}")
                print(
                    "Stop and remove it with: python -m fraiseql_alembic.devdb stop "
                    f'--dir "${DIR_VARIABLE}" --remove',
                    file=sys.stderr,
                )
            else:
                print(cluster.url())
                if args.dir is None:
                    print(
                        f"Stop it with: python -m fraiseql_alembic.devdb stop --dir "
                        f"{shlex.quote(str(cluster.base_dir))}",
                        file=sys.stderr,
                    )
        elif args.command == "stop":
            cluster = DevCluster._load(args.dir)  # noqa: SLF001
            cluster.stop()
            if args.remove:
                shutil.rmtree(cluster.base_dir)
        else:
            print(DevCluster.attach(args.dir).url())
    except DevDBError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
