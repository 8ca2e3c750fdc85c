"""Developer and CI sessions.

    nox -s tests          the whole test suite (starts its own PostgreSQL on 127.0.0.1)
    nox -s lint           ruff check + ruff format --check
    nox -s typecheck      mypy --strict on src/
    nox -s docs           regenerate docs/adapters.md from the adapters' declared capabilities
    nox -s bench          benchmarks (ratios against baselines measured in the same run)
    nox -s demo           the README's demo on a local lake

With ``--no-venv`` (as CI and the README's test command do) sessions run in the current
environment, which must already have ``pip install -e ".[all,dev,demo]"``.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "uv|virtualenv"


def _install(session: nox.Session, *args: str) -> None:
    """Install into the session's venv; with --no-venv the environment is used as it is."""
    if session.venv_backend != "none":
        session.install(*args)


@nox.session
def tests(session: nox.Session) -> None:
    _install(session, "-e", ".[all,dev,demo]")
    args = session.posargs or []
    workers = [] if any(a.startswith("-n") for a in args) else ["-n", "2"]
    session.run("python", "-m", "pytest", *workers, *args)


@nox.session
def lint(session: nox.Session) -> None:
    _install(session, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    _install(session, "-e", ".[dev]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    _install(session, "-e", ".")
    session.run("python", "-m", "lakekit._docgen", "docs/adapters.md")


@nox.session
def bench(session: nox.Session) -> None:
    _install(session, "-e", ".[dev]")
    session.run("python", "-m", "benchmarks.run", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    _install(session, "-e", ".[demo]")
    lake = os.environ.get("LAKEKIT_DEMO_LAKE", "demo-lake")
    session.run("python", "-m", "lakekit", "demo", "--lake", lake)
