"""``lakekit serve``: import an app that registers handlers on a lake and run its triggers.

    lakekit serve app.py                      a Python file (its folder goes on sys.path)
    lakekit serve mypackage.handlers          a module importable from the current folder
    lakekit serve app.py --port 8080 --lake ./lake --scan-interval 0.5

The app is ordinary Python that builds a lake at module level and decorates handlers::

    # app.py
    import lakekit

    lake = lakekit.connect()          # LAKEKIT_URL / lakekit.toml, or --lake

    @lake.functions.on_object_created(prefix="raw/", suffix=".json")
    def load(event, context): ...

The command finds the module's ``Lake`` (``--lake-var NAME`` if it has several; ``lake`` is
preferred), starts a :class:`~lakekit.triggers.server.LocalServer`, prints the triggers and
the HTTP address, and runs until Ctrl-C or SIGTERM, then stops cleanly: no new events, the
invocations in flight finish (``--drain-timeout``), the lake is closed. A second Ctrl-C while
draining exits at once (what had not finished is delivered again at the next start).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING

from lakekit.errors import ConfigurationError

if TYPE_CHECKING:
    from lakekit.lake import Lake

__all__ = ["add_parser", "find_lake", "load_app", "run"]

DEFAULT_PORT = 8000


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the ``lakekit`` sub-commands."""
    serve = sub.add_parser(
        "serve", help="run the triggers of an app's functions locally (Ctrl-C to stop)"
    )
    serve.add_argument("app", help="app.py, or a module name such as mypackage.handlers")
    serve.add_argument("--lake", help="lake URL, set as $LAKEKIT_URL before the app is imported")
    serve.add_argument("--lake-var", help="the app's Lake variable if it has several")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address for HTTP routes")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="HTTP port (0 = any free port)"
    )
    serve.add_argument("--scan-interval", type=float, default=1.0, metavar="SECONDS")
    serve.add_argument("--settle", type=float, default=1.0, metavar="SECONDS")
    serve.add_argument(
        "--dead-letter-stream",
        default="dead_letters",
        help="stream dead letters are published to ('' to turn off)",
    )
    serve.add_argument("--drain-timeout", type=float, default=30.0, metavar="SECONDS")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug also prints tracebacks of failing handlers and of the app's import",
    )


def load_app(target: str) -> ModuleType:
    """Import ``target``: a ``.py`` file, or a dotted module name importable from the current
    folder.

    Raises:
        ConfigurationError: the file or module does not exist, or importing it failed (the
            message names the error; the traceback is logged at DEBUG level).
    """
    path = Path(target)
    try:
        if target.endswith(".py") or path.is_file():
            if not path.is_file():
                raise ConfigurationError(f"no such file: {target}")
            folder = str(path.resolve().parent)
            if folder not in sys.path:
                sys.path.insert(0, folder)
            name = path.stem if path.stem.isidentifier() else "lakekit_app"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ConfigurationError(f"cannot import {target}: not a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(target)
    except ConfigurationError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name is not None and target.startswith(exc.name):
            raise ConfigurationError(
                f"no module named {target!r}: pass a file (app.py) or a module importable "
                "from the current folder"
            ) from exc
        logging.getLogger("lakekit.serve").debug("importing %s failed", target, exc_info=True)
        raise ConfigurationError(f"importing {target} failed: {_describe(exc)}") from exc
    except Exception as exc:
        logging.getLogger("lakekit.serve").debug("importing %s failed", target, exc_info=True)
        hint = "use --log-level debug for the traceback"
        raise ConfigurationError(f"importing {target} failed: {_describe(exc)} ({hint})") from exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def find_lake(module: ModuleType, name: str | None = None) -> Lake:
    """The module's ``Lake``: the variable ``name``, or its only module-level Lake (``lake``
    if it has several).

    Raises:
        ConfigurationError: no such Lake, or several and none called ``lake``.
    """
    from lakekit.lake import Lake

    where = getattr(module, "__file__", None) or module.__name__
    if name is not None:
        value = getattr(module, name, None)
        if not isinstance(value, Lake):
            raise ConfigurationError(f"{where} has no Lake called {name!r}")
        return value
    found: dict[int, tuple[str, Lake]] = {}
    for attr, value in vars(module).items():
        if isinstance(value, Lake):
            found.setdefault(id(value), (attr, value))
    if not found:
        raise ConfigurationError(
            f"{where} defines no Lake at module level: add e.g. `lake = lakekit.connect()` "
            "and register handlers with @lake.functions.on_..."
        )
    if len(found) == 1:
        return next(iter(found.values()))[1]
    lake = getattr(module, "lake", None)
    if isinstance(lake, Lake):
        return lake
    names = sorted(attr for attr, _ in found.values())
    raise ConfigurationError(f"{where} has several Lakes ({names}); pick one with --lake-var")


def run(args: argparse.Namespace) -> int:
    """Run ``lakekit serve``; returns the exit status.

    Raises:
        ConfigurationError: the app cannot be loaded, registers no trigger, or the server
            cannot start.
    """
    from lakekit._redact import redact_url
    from lakekit.triggers.server import LocalServer

    _configure_logging(args.log_level)
    if args.lake:
        os.environ["LAKEKIT_URL"] = args.lake
    module = load_app(args.app)
    lake = find_lake(module, args.lake_var)
    bindings = lake.functions.triggers()
    if not bindings:
        raise ConfigurationError(
            f"{args.app} registers no trigger on its lake: decorate handlers with "
            "@lake.functions.on_object_created / on_stream / on_schedule / on_http"
        )
    server = LocalServer(
        lake,
        http_host=args.host,
        http_port=args.port,
        scan_interval=args.scan_interval,
        settle=args.settle,
        dead_letter_stream=args.dead_letter_stream or None,
        drain_timeout=args.drain_timeout,
    )
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop_requested.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: do not wait for the drain
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(f"lakekit serve: lake {redact_url(lake.url)}")
        for binding in bindings:
            print(f"  {binding}")
        if server.url is not None:
            print(f"HTTP on {server.url}")
        print("Ctrl-C to stop.", flush=True)
        while not stop_requested.wait(0.5):
            pass
        print("lakekit serve: stopping (draining invocations in flight)...", flush=True)
        drained = server.stop()
        lake.close()
        if drained:
            print("lakekit serve: stopped.", flush=True)
        else:
            print(
                "lakekit serve: stopped; invocations still running are delivered again at the "
                "next start.",
                flush=True,
            )
        return 0
    except KeyboardInterrupt:
        print("lakekit serve: interrupted while draining.", file=sys.stderr, flush=True)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.running:
            server.stop(timeout=0.0)


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=getattr(logging, level.upper()),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    logging.getLogger("lakekit").setLevel(getattr(logging, level.upper()))
