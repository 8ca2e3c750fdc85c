"""A throwaway PostgreSQL server on 127.0.0.1 for tests.

Works on a fresh machine where the only install step was ``pip install -e ".[dev]"``: the dev
extra brings ``pgserver``, whose wheel bundles PostgreSQL 16 binaries. We only borrow those
binaries (``initdb``, ``pg_ctl``, ``postgres``) and start the server ourselves, listening on
127.0.0.1 and a free TCP port with password authentication, so tests use an ordinary URL:
``postgresql+psycopg://postgres:<password>@127.0.0.1:<port>/postgres``.

Binaries are looked up in this order: ``$LAKEKIT_TEST_POSTGRES_BIN``, pgserver's bundle, a
system install (``pg_ctl`` on PATH, or Debian's ``/usr/lib/postgresql/<v>/bin``).

PostgreSQL refuses to run as root. pgserver's own answer is to ``useradd`` a ``pgserver`` user
and widen permissions up to ``/``; we instead run ``initdb``/``pg_ctl`` as the ``nobody`` user
(present on every Linux system) with a data directory owned by it, and copy the binaries to a
temporary directory first if ``nobody`` cannot execute them where they are installed.

``$LAKEKIT_TEST_POSTGRES_URL`` points tests at an existing server instead (nothing is started).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "URL_ENV",
    "PostgresServer",
    "PostgresUnavailableError",
    "find_bin_dir",
    "running_postgres",
]

URL_ENV = "LAKEKIT_TEST_POSTGRES_URL"
BIN_ENV = "LAKEKIT_TEST_POSTGRES_BIN"
_START_ATTEMPTS = 3
_TOOLS = ("initdb", "pg_ctl", "postgres")


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be started (the message says why and how to fix it)."""


@dataclass(frozen=True)
class PostgresServer:
    """A running server. ``url`` is a SQLAlchemy URL (``postgresql+psycopg://...``)."""

    url: str
    host: str
    port: int
    user: str
    password: str
    database: str
    data_dir: Path | None = None
    """None for an external server (``$LAKEKIT_TEST_POSTGRES_URL``)."""


def find_bin_dir() -> Path | None:
    """A directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates: list[Path] = []
    if os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]))
    spec = importlib.util.find_spec("pgserver")  # located, not imported (it has side effects)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "pginstall" / "bin")
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(Path(pg_ctl).resolve().parent)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in _TOOLS):
            return candidate
    return None


@contextlib.contextmanager
def running_postgres(*, startup_timeout: float = 60.0) -> Iterator[PostgresServer]:
    """Start a private PostgreSQL server for the duration of the ``with`` block.

    Honours ``$LAKEKIT_TEST_POSTGRES_URL`` (yields that server, starts nothing). Otherwise the
    server runs from a fresh temporary directory that is deleted after the server stopped.

    Raises:
        PostgresUnavailableError: no binaries, or the server did not start (with its log).
    """
    external = os.environ.get(URL_ENV)
    if external:
        yield _external(external)
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailableError(
            "no PostgreSQL binaries found: install the dev extra (pip install -e '.[dev]', which "
            f"brings pgserver), install PostgreSQL (apt-get install postgresql), set {BIN_ENV} "
            f"to a directory holding initdb/pg_ctl/postgres, or set {URL_ENV} to a server URL"
        )
    base = Path(tempfile.mkdtemp(prefix="lakekit-pg-"))
    run_as = _unprivileged_user()
    try:
        if run_as is not None:
            os.chown(base, run_as[0], run_as[1])
            bin_dir = _usable_bin_dir(bin_dir, base, run_as)
        server, data_dir = _init_and_start(bin_dir, base, run_as, startup_timeout)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        _stop(bin_dir, data_dir, base, run_as)
        shutil.rmtree(base, ignore_errors=True)


def _external(url: str) -> PostgresServer:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise PostgresUnavailableError(f"{URL_ENV} must be a postgresql URL")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return PostgresServer(
        url=parsed.render_as_string(hide_password=False),
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password if isinstance(parsed.password, str) else "",
        database=parsed.database or "postgres",
    )


def _unprivileged_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root, else None (run as ourselves)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise PostgresUnavailableError(
            f"running as root and there is no 'nobody' user to run PostgreSQL as; run the "
            f"tests as another user or set {URL_ENV}"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _run(
    args: list[str], run_as: tuple[int, int] | None, cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    kwargs: dict[str, Any] = {}
    if run_as is not None:
        kwargs.update(user=run_as[0], group=run_as[1], extra_groups=[])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    return subprocess.run(  # noqa: PLW1510 - callers check returncode to show the log
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def _usable_bin_dir(bin_dir: Path, base: Path, run_as: tuple[int, int]) -> Path:
    """``bin_dir`` if the unprivileged user can run it, else a copy it can run.

    The copy keeps the layout below ``bin_dir.parents[2]`` (site-packages for pgserver), with
    the auditwheel ``<package>.libs`` directory beside it: pgserver's binaries find libpq
    through ``RPATH $ORIGIN/../../../pgserver.libs``.
    """
    try:
        probe = _run([str(bin_dir / "postgres"), "--version"], run_as, base, 30)
        if probe.returncode == 0:
            return bin_dir
    except PermissionError:
        pass
    anchor = bin_dir.parents[2]
    copy_root = base / "pgcopy"
    install = bin_dir.parent
    for part in ("bin", "lib", "share"):
        source = install / part
        if source.is_dir():
            shutil.copytree(source, copy_root / install.relative_to(anchor) / part, symlinks=True)
    package = bin_dir.relative_to(anchor).parts[0]
    libs = anchor / f"{package}.libs"
    if libs.is_dir():
        shutil.copytree(libs, copy_root / libs.name, symlinks=True)
    for root, dirs, _files in os.walk(copy_root):
        Path(root).chmod(0o755)
        for name in dirs:
            Path(root, name).chmod(0o755)
    copied = copy_root / bin_dir.relative_to(anchor)
    probe = _run([str(copied / "postgres"), "--version"], run_as, base, 30)
    if probe.returncode != 0:
        raise PostgresUnavailableError(
            f"the 'nobody' user cannot run PostgreSQL from {bin_dir} nor from a copy: "
            f"{probe.stderr.strip()}; run the tests as a non-root user or set {URL_ENV}"
        )
    return copied


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _init_and_start(
    bin_dir: Path, base: Path, run_as: tuple[int, int] | None, timeout: float
) -> tuple[PostgresServer, Path]:
    data_dir = base / "data"
    password = secrets.token_urlsafe(16)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if run_as is not None:
        os.chown(pwfile, run_as[0], run_as[1])
    init = _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ],
        run_as,
        base,
        timeout,
    )
    pwfile.unlink()
    if init.returncode != 0:
        raise PostgresUnavailableError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    with (data_dir / "postgresql.conf").open("a") as conf:
        # A disposable test server: no unix socket, no fsync; enough connections for the
        # multi-process tests.
        conf.write(
            "\nunix_socket_directories = ''\nfsync = off\nsynchronous_commit = off\n"
            "full_page_writes = off\nmax_connections = 200\n"
        )
    log = base / "postgres.log"
    last_error = ""
    for _ in range(_START_ATTEMPTS):
        port = _free_port()
        start = _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {port}",
                "start",
            ],
            run_as,
            base,
            timeout + 10,
        )
        if start.returncode == 0:
            server = PostgresServer(
                url=f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres",
                host="127.0.0.1",
                port=port,
                user="postgres",
                password=password,
                database="postgres",
                data_dir=data_dir,
            )
            _wait_connectable(server, timeout)
            return server, data_dir
        # Most likely the port was taken between choosing and binding it: try another one.
        last_error = f"{start.stdout}\n{start.stderr}\n{_tail(log)}"
    raise PostgresUnavailableError(
        f"PostgreSQL did not start after {_START_ATTEMPTS} attempts:\n{last_error}"
    )


def _wait_connectable(server: PostgresServer, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(
                host=server.host,
                port=server.port,
                user=server.user,
                password=server.password,
                dbname=server.database,
                connect_timeout=5,
            ) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PostgresUnavailableError(f"PostgreSQL started but refuses: {exc}") from exc
            time.sleep(0.1)


def _stop(bin_dir: Path, data_dir: Path, base: Path, run_as: tuple[int, int] | None) -> None:
    stop = _run(
        [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
        run_as,
        base,
        60,
    )
    if stop.returncode == 0:
        return
    pid_file = data_dir / "postmaster.pid"
    if pid_file.exists():  # pg_ctl failed: stop the postmaster we started ourselves
        with contextlib.suppress(ValueError, IndexError, ProcessLookupError):
            os.kill(int(pid_file.read_text().splitlines()[0]), 15)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
