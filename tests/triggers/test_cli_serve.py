"""``lakekit serve``: imports the user's app (a file or a module), runs its triggers until
SIGTERM/Ctrl-C, stops cleanly; bad apps get a one-line error and exit status 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from trigger_helpers import wait_for

from lakekit.cli import main

APP = textwrap.dedent(
    """
    import pathlib
    import time

    import lakekit

    lake = lakekit.connect()  # LAKEKIT_URL, set by --lake
    HERE = pathlib.Path(__file__).parent

    @lake.functions.on_object_created(prefix="in/")
    def copy(event, context):
        with open(HERE / "started.txt", "a") as fh:
            fh.write(event.key + "\\n")
        time.sleep(0.3)  # still running when SIGTERM arrives: the stop drains it
        with open(HERE / "out.txt", "a") as fh:
            fh.write(event.key + "\\n")

    @lake.functions.on_http("/hello", methods=["GET"])
    def hello(event, context):
        return {"hello": event.query.get("name", "world")}
    """
)


def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], list[str]]:
    child = subprocess.Popen(
        [sys.executable, "-m", "lakekit", "serve", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C to stop"):
            return child, lines
    child.kill()
    _, err = child.communicate()
    pytest.fail(f"lakekit serve did not start: {lines} {err}")


def test_serve_runs_an_app_file_until_sigterm_and_drains(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    lake_dir = tmp_path / "lake"
    child, lines = _start(
        [
            "app.py",
            "--lake",
            str(lake_dir),
            "--port",
            "0",
            "--scan-interval",
            "0.05",
            "--settle",
            "0.1",
        ],
        tmp_path,
    )
    try:
        assert "  copy <- object created in/*" in lines
        assert "  hello <- http GET /hello" in lines
        (url,) = [line.removeprefix("HTTP on ") for line in lines if line.startswith("HTTP on")]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/hello?name=cli", timeout=30) as response:
            assert json.loads(response.read()) == {"hello": "cli"}
        (lake_dir / "in").mkdir(parents=True)
        (lake_dir / "in" / "a.txt").write_text("dropped by another program")
        wait_for((tmp_path / "out.txt").exists)
        (lake_dir / "in" / "b.txt").write_text("second")
        started = tmp_path / "started.txt"
        wait_for(lambda: "in/b.txt" in started.read_text())
        child.send_signal(signal.SIGTERM)  # while b.txt's handler runs
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert "stopped." in out
    assert (tmp_path / "out.txt").read_text().split() == ["in/a.txt", "in/b.txt"]


def test_serve_imports_a_module_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "handlers.py").write_text(
        textwrap.dedent(
            """
            import lakekit
            from lakekit.triggers import once

            lake = lakekit.connect()

            @lake.functions.on_schedule("rate(1 day)")
            def nightly(event, context):
                with once(context, event.id) as first:
                    pass
            """
        )
    )
    env_lake = str(tmp_path / "lake")
    child, lines = _start(["myapp.handlers", "--lake", env_lake], tmp_path)
    assert "  nightly <- schedule rate(1 day)" in lines
    assert not any(line.startswith("HTTP on") for line in lines), "no routes, no HTTP server"
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "stopped." in out


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "defines no Lake"),
        ("import lakekit\nlake = lakekit.connect()\n", "registers no trigger"),
        ("raise RuntimeError('boom')\n", "importing .* failed: RuntimeError: boom"),
        (
            "import lakekit\na = lakekit.connect()\nb = lakekit.connect()\n",
            "several Lakes",
        ),
    ],
)
def test_bad_apps_get_a_one_line_error_and_status_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: str,
    message: str,
) -> None:
    import re

    monkeypatch.setenv("LAKEKIT_URL", f"local://{tmp_path / 'lake'}")
    app = tmp_path / f"bad_app_{abs(hash(source))}.py"
    app.write_text(source)
    assert main(["serve", str(app)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lakekit: error: ")
    assert re.search(message, err), err
    assert len(err.strip().splitlines()) == 1


def test_missing_apps_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "no_such_app.py"]) == 2
    assert "no such file: no_such_app.py" in capsys.readouterr().err
    assert main(["serve", "no_such_package.handlers"]) == 2
    assert "no module named 'no_such_package.handlers'" in capsys.readouterr().err
