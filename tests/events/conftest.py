"""Sample payloads: the providers' documented sample events, stored under ``samples/`` (where
each comes from: ``samples/README.md``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def sample() -> Callable[[str], Any]:
    """``sample("aws_s3_put")`` -> a fresh copy of ``samples/aws_s3_put.json``."""

    def load(name: str) -> Any:
        return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))

    return load
