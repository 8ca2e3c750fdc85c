"""Configuration: typed, explicit, traceable.

A lake is configured by its URL plus optional per-component settings. Each setting comes from,
in order of precedence:

1. an explicit argument:
   ``connect(url, catalog="postgresql+psycopg://...", stream={"fsync": "always"})``
2. an environment variable: ``LAKEKIT_URL``; ``LAKEKIT_<COMPONENT>`` (the component's URL);
   ``LAKEKIT_<COMPONENT>_<SETTING>`` (e.g. ``LAKEKIT_STREAM_FSYNC=always``)
3. a ``lakekit.toml`` file (``$LAKEKIT_CONFIG``, or ``./lakekit.toml`` if present)::

       [lake]
       url = "local://./lake"

       [catalog]
       url = "postgresql+psycopg://lake@db.internal/lake"

       [stream]
       fsync = "always"

Components are ``store``, ``catalog``, ``engine``, ``stream`` and ``functions``. Every adapter
validates its settings with a pydantic model (``extra="forbid"``): an unknown or malformed
setting is a ConfigurationError naming the setting, where it came from and its env variable.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from lakekit._redact import redact_url
from lakekit.errors import ConfigurationError
from lakekit.registry import COMPONENTS, Component, scheme_of

__all__ = [
    "AdapterSettings",
    "ComponentConfig",
    "LakeConfig",
    "env_var",
    "load_config",
    "local_path",
]

ENV_PREFIX = "LAKEKIT_"
S = TypeVar("S", bound="AdapterSettings")


def env_var(component: str, setting: str | None = None) -> str:
    """The environment variable for a component's URL or one of its settings."""
    if component == "lake":
        return f"{ENV_PREFIX}URL"
    base = f"{ENV_PREFIX}{component.upper()}"
    return base if setting in (None, "url") else f"{base}_{setting.upper()}"


class AdapterSettings(BaseModel):
    """Base of every adapter's settings model.

    Subclasses add fields with a ``description`` and defaults; ``url`` is the component URL.
    Each field ``f`` of component ``c`` can be set by ``LAKEKIT_<C>_<F>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    component: ClassVar[str] = ""
    url: str

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name == "url" and isinstance(value, str):
                yield name, redact_url(value)
            elif isinstance(value, SecretStr):
                yield name, "**********"
            else:
                yield name, value


@dataclass
class ComponentConfig:
    """One component's raw configuration before its adapter validates it."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    """Where each value came from (``argument``, ``env LAKEKIT_X``, ``lakekit.toml``)."""
    instance: Any = None
    """A ready-made adapter (or facade) passed explicitly; bypasses the registry."""

    @property
    def url(self) -> str | None:
        value = self.values.get("url")
        return value if isinstance(value, str) else None

    def set(self, key: str, value: Any, origin: str) -> None:
        self.values[key] = value
        self.origins[key] = origin


@dataclass
class LakeConfig:
    """The merged configuration of a lake: its URL and each component's settings."""

    url: str
    components: dict[str, ComponentConfig]
    source_file: Path | None = None

    def __repr__(self) -> str:
        return f"LakeConfig(url={redact_url(self.url)!r})"

    @property
    def scheme(self) -> str:
        return scheme_of(self.url)

    def component(self, name: Component) -> ComponentConfig:
        return self.components.setdefault(name, ComponentConfig())

    def settings(self, name: Component, model: type[S]) -> S:
        """Validate a component's values against an adapter's settings model.

        Raises:
            ConfigurationError: naming each bad setting, its origin and its env variable.
        """
        comp = self.component(name)
        try:
            return model.model_validate(comp.values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                setting = ".".join(str(p) for p in err["loc"]) or "?"
                origin = comp.origins.get(setting.split(".", 1)[0], "")
                where = f" (from {origin})" if origin else ""
                if err["type"] == "extra_forbidden":
                    allowed = ", ".join(sorted(model.model_fields))
                    msg = f"unknown setting {setting!r}{where}; {model.__name__} accepts: {allowed}"
                elif err["type"] == "missing":
                    msg = f"missing setting {setting!r}: set it or {env_var(name, setting)}"
                else:
                    var = env_var(name, setting)
                    msg = f"setting {setting!r}{where}: {err['msg']}; env var {var}"
                problems.append(msg)
            raise ConfigurationError(
                f"invalid {name} configuration for {model.__name__}: " + "; ".join(problems)
            ) from None


def local_path(url: str) -> Path:
    """The absolute directory of a local lake URL (``local://./lake``, ``file:///x``, a path)."""
    if url.startswith("local://"):
        raw = url.removeprefix("local://")
    elif url.startswith("file://"):
        raw = url.removeprefix("file://")
    elif "://" in url:
        raise ConfigurationError(f"{redact_url(url)!r} is not a local lake URL")
    else:
        raw = url
    if not raw:
        raise ConfigurationError(f"local lake URL {url!r} has no path; try 'local://./lake'")
    return Path(raw).expanduser().resolve()


def _default_urls(lake_url: str) -> dict[str, str]:
    """The component URLs a lake URL implies when nothing overrides them."""
    scheme = scheme_of(lake_url)
    if scheme in ("local", "file"):
        root = local_path(lake_url)
        return {
            "store": f"local://{root}",
            "catalog": f"sqlite:///{root}/.lakekit/catalog.db",
            "engine": "duckdb",
            "stream": "local",
            "functions": "local",
        }
    if scheme in ("s3", "s3a"):
        # An AWS lake: S3 store, Glue catalog, DuckDB reading the tables through the S3 store,
        # in-process functions: nothing billed beyond S3 and Glue until the user opts in to
        # Athena, Lambda or a stream (Kinesis is billed per shard-hour, so none is chosen).
        return {"store": lake_url, "catalog": "glue://", "engine": "duckdb", "functions": "local"}
    # Other lakes get their store from the URL; the rest must be configured until their
    # provider's adapters define defaults.
    return {"store": lake_url, "engine": "duckdb", "functions": "local"}


def load_config(
    url: str | os.PathLike[str] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> LakeConfig:
    """Merge file < environment < explicit arguments into a :class:`LakeConfig`.

    ``overrides`` are per component (``store``, ``catalog``, ``engine``, ``stream``,
    ``functions``): a URL string, a dict of settings (may include ``url``), or a ready adapter.

    Raises:
        ConfigurationError: unknown component, unreadable file, or no lake URL anywhere.
    """
    environ = os.environ if env is None else env
    unknown = set(overrides) - set(COMPONENTS)
    if unknown:
        raise ConfigurationError(
            f"unknown lake component(s) {sorted(unknown)}; expected {', '.join(COMPONENTS)}"
        )
    components: dict[str, ComponentConfig] = {c: ComponentConfig() for c in COMPONENTS}
    path = _find_config_file(config_file, environ)
    lake_url = _apply_file(path, components) if path is not None else None
    lake_url = _apply_env(environ, components) or lake_url
    if url is not None:
        lake_url = os.fspath(url)
    _apply_overrides(overrides, components)
    if not lake_url:
        raise ConfigurationError(
            "no lake URL: pass lakekit.connect('local://./lake'), set LAKEKIT_URL, or put "
            "url under [lake] in lakekit.toml"
        )
    for component, default in _default_urls(lake_url).items():
        comp = components[component]
        if "url" not in comp.values:
            comp.set("url", default, f"default for {scheme_of(lake_url)} lakes")
    return LakeConfig(url=lake_url, components=components, source_file=path)


def _apply_file(path: Path, components: dict[str, ComponentConfig]) -> str | None:
    """Read ``lakekit.toml`` into ``components``; return the lake URL it names, if any."""
    lake_url: str | None = None
    for section, values in _read_toml(path).items():
        if section != "lake" and section not in COMPONENTS:
            raise ConfigurationError(
                f"{path}: unknown section [{section}]; expected [lake] or one of "
                f"{', '.join(f'[{c}]' for c in COMPONENTS)}"
            )
        if not isinstance(values, dict):
            raise ConfigurationError(f"{path}: [{section}] must be a table of settings")
        if section == "lake":
            extra = set(values) - {"url"}
            if extra:
                raise ConfigurationError(f"{path}: unknown setting(s) in [lake]: {sorted(extra)}")
            lake_url = str(values["url"]) if "url" in values else None
            continue
        for key, value in values.items():
            components[section].set(key, value, str(path))
    return lake_url


def _apply_env(environ: Mapping[str, str], components: dict[str, ComponentConfig]) -> str | None:
    """Read ``LAKEKIT_*`` variables into ``components``; return ``LAKEKIT_URL`` if set."""
    for component in COMPONENTS:
        base = env_var(component)
        for name, value in environ.items():
            if name in (base, f"{base}_URL"):
                components[component].set("url", value, f"env {name}")
            elif name.startswith(base + "_"):
                components[component].set(name[len(base) + 1 :].lower(), value, f"env {name}")
    return environ.get(env_var("lake")) or None


def _apply_overrides(overrides: Mapping[str, Any], components: dict[str, ComponentConfig]) -> None:
    for component, value in overrides.items():
        if value is None:
            continue
        comp = components[component]
        if isinstance(value, str | os.PathLike):
            comp.set("url", os.fspath(value), "argument")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                comp.set(str(key), item, "argument")
        else:
            comp.instance = value


def _find_config_file(
    config_file: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> Path | None:
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigurationError(f"config file {path} does not exist")
        return path
    if environ.get("LAKEKIT_CONFIG"):
        path = Path(environ["LAKEKIT_CONFIG"])
        if not path.is_file():
            raise ConfigurationError(f"LAKEKIT_CONFIG points to {path}, which does not exist")
        return path
    default = Path("lakekit.toml")
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from exc
