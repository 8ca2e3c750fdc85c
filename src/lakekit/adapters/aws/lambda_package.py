"""Lambda deployment zips: a handler module, lakekit and the dependencies they need.

:func:`build_package` collects, by *import name*, the handler's top-level module or package,
``lakekit`` and the closure of lakekit's required dependencies (read from the installed
distributions' metadata), minus what ``exclude`` names, plus what ``include`` adds. It returns
the zip bytes with a :class:`PackageReport`: each package's file count and size, the total
zipped and unzipped size, and whether they fit Lambda's limits (50 MB zipped for a direct
upload, 250 MB unzipped including layers).

Users hit the size limit mostly through pyarrow and DuckDB (together well over 250 MB
unzipped). They are excluded by default (``HEAVY``); give them to the function as a layer
(for instance the AWS SDK for pandas layer, which contains pyarrow) or include them
explicitly. boto3 and botocore are part of the Lambda Python runtime and are never packaged
unless included (``RUNTIME_PROVIDED``).

The zip is **deterministic**: the same files give the same bytes (entries sorted by name,
fixed timestamps and permissions, no ``__pycache__``/``.pyc``), so its SHA-256 (Lambda's
``CodeSha256``) tells whether a deployment changed anything.

Compiled dependencies (pydantic-core, ...) are copied as installed: build on the OS and CPU
architecture the function runs on (Linux, x86_64 or arm64) with the same Python version.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lakekit.errors import InvalidInputError

__all__ = [
    "HEAVY",
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIPPED_BYTES",
    "RUNTIME_PROVIDED",
    "LambdaPackage",
    "PackageEntry",
    "PackageReport",
    "build_package",
]

MAX_ZIPPED_BYTES = 50 * 1024 * 1024
"""Largest zip Lambda accepts in the request itself (larger ones go through S3)."""
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
"""Largest unzipped function code, layers included."""
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
)
"""Import names the Lambda Python runtime already has."""
HEAVY = frozenset({"pyarrow", "duckdb", "pandas", "numpy", "polars", "sqlalchemy"})
"""Large dependencies left out by default: provide them through a layer, or ``include`` them."""
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class PackageEntry:
    """One top-level package (or module) in the zip."""

    name: str
    files: int
    unzipped_bytes: int
    zipped_bytes: int


@dataclass(frozen=True)
class PackageReport:
    """What a deployment zip holds and whether it fits Lambda's limits."""

    entries: tuple[PackageEntry, ...]
    zipped_bytes: int
    unzipped_bytes: int
    excluded: tuple[str, ...] = ()
    """Dependencies left out (``exclude``), to provide through layers if the code needs them."""
    missing: tuple[str, ...] = ()
    """Required dependencies that are not installed here, so could not be packaged."""

    @property
    def fits_direct_upload(self) -> bool:
        return self.zipped_bytes <= MAX_ZIPPED_BYTES

    @property
    def fits_lambda(self) -> bool:
        return self.unzipped_bytes <= MAX_UNZIPPED_BYTES

    def __str__(self) -> str:
        rows = sorted(self.entries, key=lambda e: -e.unzipped_bytes)
        width = max([len(e.name) for e in rows] + [7])
        lines = [f"{'package':<{width}}  {'files':>6}  {'unzipped':>10}  {'zipped':>10}"]
        lines += [
            f"{e.name:<{width}}  {e.files:>6}  {_mb(e.unzipped_bytes):>10}  "
            f"{_mb(e.zipped_bytes):>10}"
            for e in rows
        ]
        lines.append(
            f"{'total':<{width}}  {sum(e.files for e in rows):>6}  "
            f"{_mb(self.unzipped_bytes):>10}  {_mb(self.zipped_bytes):>10}"
        )
        lines.append(
            f"Lambda limits: {_mb(MAX_ZIPPED_BYTES)} zipped for a direct upload "
            f"({'ok' if self.fits_direct_upload else 'EXCEEDED: upload through S3'}), "
            f"{_mb(MAX_UNZIPPED_BYTES)} unzipped with layers "
            f"({'ok' if self.fits_lambda else 'EXCEEDED: exclude packages, use layers'})"
        )
        if self.excluded:
            lines.append(
                f"excluded (provide through a layer if needed): {', '.join(self.excluded)}"
            )
        if self.missing:
            lines.append(f"not installed here, not packaged: {', '.join(self.missing)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class LambdaPackage:
    """A built deployment zip."""

    data: bytes = field(repr=False)
    report: PackageReport
    handler: str
    """``module:function`` the shim loads (LAKEKIT_HANDLER)."""

    @property
    def code_sha256(self) -> str:
        """Base64 SHA-256 of the zip: what Lambda reports as ``CodeSha256``."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()


def build_package(
    handler: str,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = RUNTIME_PROVIDED | HEAVY,
    with_lakekit: bool = True,
) -> LambdaPackage:
    """Build the deployment zip of ``handler`` (``"module:function"`` or ``"pkg.mod:function"``).

    Args:
        handler: the handler's module and function; the module's top-level package (or the
            module itself) is packaged whole.
        include: extra import names to package (with their own dependencies), e.g. ``"pyarrow"``.
        exclude: import names never packaged, even as dependencies (default: what the Lambda
            runtime provides, and ``HEAVY``).
        with_lakekit: package lakekit and its dependencies (the shim needs them; turn off when
            a layer provides lakekit).

    Raises:
        InvalidInputError: ``handler`` is malformed, its module cannot be found, or it lives in
            ``__main__``.
    """
    module, _, function = handler.partition(":")
    if not module or not function or not all(_NAME.fullmatch(p) for p in module.split(".")):
        raise InvalidInputError(
            f"handler must be 'module:function' (e.g. 'jobs.enrich:handle'), got {handler!r}"
        )
    if module == "__main__":
        raise InvalidInputError(
            "a handler defined in __main__ cannot be deployed: move it into a module "
            "(e.g. handlers.py) and import it from there"
        )
    top = module.split(".", 1)[0]
    excluded = {name for name in exclude if name not in include}
    wanted = [top]
    if with_lakekit:
        wanted.append("lakekit")
    wanted += [name for name in include if name not in wanted]
    names, missing, left_out = _closure(wanted, excluded)
    if top not in names:
        raise InvalidInputError(f"cannot find the handler's module {module!r}: is it importable?")
    files = sorted(_files(names), key=lambda item: item[0])
    data, entries = _zip(files)
    report = PackageReport(
        entries=tuple(entries),
        zipped_bytes=len(data),
        unzipped_bytes=sum(e.unzipped_bytes for e in entries),
        excluded=tuple(sorted(left_out)),
        missing=tuple(sorted(missing)),
    )
    return LambdaPackage(data=data, report=report, handler=handler)


def _closure(wanted: Sequence[str], excluded: set[str]) -> tuple[list[str], set[str], set[str]]:
    """Import names to package: ``wanted`` plus their distributions' required dependencies."""
    by_import = importlib.metadata.packages_distributions()
    imports_of: dict[str, set[str]] = {}
    for name, dists in by_import.items():
        for dist in dists:
            imports_of.setdefault(_canonical(dist), set()).add(name)
    names: list[str] = []
    missing: set[str] = set()
    left_out: set[str] = set()
    seen_dists: set[str] = set()
    queue = list(wanted)
    while queue:
        name = queue.pop(0)
        if name in names:
            continue
        if name in excluded:
            left_out.add(name)
            continue
        if importlib.util.find_spec(name) is None:
            missing.add(name)
            continue
        names.append(name)
        for dist in by_import.get(name, []) or _dist_of_editable(name):
            key = _canonical(dist)
            if key in seen_dists:
                continue
            seen_dists.add(key)
            for requirement in _required(dist):
                targets = imports_of.get(_canonical(requirement))
                if targets is None:
                    missing.add(requirement)
                    continue
                if targets & excluded:  # one distribution, several import names: all or none
                    left_out.update(targets & excluded)
                    continue
                queue.extend(sorted(t for t in targets if not t.startswith("_")) or sorted(targets))
    return names, missing, left_out


def _dist_of_editable(name: str) -> list[str]:
    """An editable install maps no import name to its distribution: try the same name."""
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return []
    return [name]


def _required(dist: str) -> list[str]:
    """The distribution's unconditional requirements (extras left out, markers evaluated)."""
    try:
        requirements = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    out = []
    for text in requirements:
        try:
            from packaging.requirements import Requirement

            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            out.append(requirement.name)
        except ImportError:  # pragma: no cover - packaging comes with pip and most installs
            if "extra ==" not in text:
                out.append(re.split(r"[\s;<>=!~\[(]", text, maxsplit=1)[0])
    return out


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _files(names: Iterable[str]) -> Iterator[tuple[str, Path, str]]:
    """(archive name, file path, top-level name) for every file of the named imports."""
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                root = Path(location)
                for path in _walk(root):
                    arcname = f"{name}/{path.relative_to(root).as_posix()}"
                    yield arcname, path, name
        elif spec.origin and os.path.isfile(spec.origin):
            path = Path(spec.origin)
            yield path.name, path, name


def _walk(root: Path) -> Iterator[Path]:
    for directory, subdirs, filenames in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS)
        for filename in sorted(filenames):
            if not filename.endswith((".pyc", ".pyo")):
                yield Path(directory) / filename


def _zip(files: Sequence[tuple[str, Path, str]]) -> tuple[bytes, list[PackageEntry]]:
    buffer = io.BytesIO()
    sizes: dict[str, list[int]] = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        seen: set[str] = set()
        for arcname, path, top in files:
            if arcname in seen:
                continue
            seen.add(arcname)
            data = path.read_bytes()
            info = zipfile.ZipInfo(arcname, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            mode = 0o755 if os.access(path, os.X_OK) and path.suffix in (".so", "") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, data)
            entry = sizes.setdefault(top, [0, 0, 0])
            entry[0] += 1
            entry[1] += len(data)
            entry[2] += archive.getinfo(arcname).compress_size
    entries = [PackageEntry(n, v[0], v[1], v[2]) for n, v in sorted(sizes.items())]
    return buffer.getvalue(), entries


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
