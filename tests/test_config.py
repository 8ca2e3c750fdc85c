from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import Field, SecretStr

from lakekit import ConfigurationError
from lakekit.config import AdapterSettings, env_var, load_config, local_path


class _DemoSettings(AdapterSettings):
    fsync: Literal["always", "batch", "never"] = Field("batch", description="LAKEKIT_STREAM_FSYNC")
    partitions: int = Field(4, description="LAKEKIT_STREAM_PARTITIONS")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_local_url_selects_the_embedded_defaults(tmp_path: Path) -> None:
    config = load_config(f"local://{tmp_path}/lake", env={})
    urls = {name: comp.url for name, comp in config.components.items()}
    assert urls == {
        "store": f"local://{tmp_path}/lake",
        "catalog": f"sqlite:///{tmp_path}/lake/.lakekit/catalog.db",
        "engine": "duckdb",
        "stream": "local",
        "functions": "local",
    }


def test_plain_and_relative_paths_are_local_lakes(tmp_path: Path) -> None:
    assert load_config(str(tmp_path), env={}).scheme == "local"
    assert local_path("local://./lake") == (Path.cwd() / "lake").resolve()
    assert local_path("file:///tmp/x") == Path("/tmp/x")
    with pytest.raises(ConfigurationError, match="no path"):
        local_path("local://")


def test_explicit_beats_env_beats_file(tmp_path: Path) -> None:
    cfg = _write(
        tmp_path / "lakekit.toml",
        '[lake]\nurl = "local://./from-file"\n[stream]\nfsync = "never"\npartitions = 2\n',
    )
    env = {"LAKEKIT_STREAM_FSYNC": "always"}
    config = load_config(config_file=cfg, env=env)
    assert config.url == "local://./from-file"
    assert config.component("stream").values["fsync"] == "always"
    assert config.component("stream").values["partitions"] == 2

    env["LAKEKIT_URL"] = "local://./from-env"
    assert load_config(config_file=cfg, env=env).url == "local://./from-env"

    config = load_config("local://./explicit", config_file=cfg, env=env, stream={"fsync": "batch"})
    assert config.url == "local://./explicit"
    settings = config.settings("stream", _DemoSettings)
    assert (settings.fsync, settings.partitions) == ("batch", 2)


def test_component_urls_come_from_env(tmp_path: Path) -> None:
    env = {"LAKEKIT_CATALOG": "postgresql+psycopg://u:pw@h/db", "LAKEKIT_ENGINE_URL": "duckdb"}
    config = load_config(str(tmp_path), env=env)
    assert config.component("catalog").url == "postgresql+psycopg://u:pw@h/db"
    assert config.component("catalog").origins["url"] == "env LAKEKIT_CATALOG"


def test_lakekit_toml_in_the_working_directory_is_found(tmp_path: Path) -> None:
    _write(Path("lakekit.toml"), '[lake]\nurl = "local://./cwd-lake"\n')
    assert load_config(env={}).url == "local://./cwd-lake"


def test_lakekit_config_env_points_at_a_file(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "other.toml", '[lake]\nurl = "local://./other"\n')
    assert load_config(env={"LAKEKIT_CONFIG": str(cfg)}).url == "local://./other"
    with pytest.raises(ConfigurationError, match="LAKEKIT_CONFIG"):
        load_config(env={"LAKEKIT_CONFIG": str(tmp_path / "missing.toml")})


def test_missing_lake_url_says_how_to_set_it() -> None:
    with pytest.raises(ConfigurationError, match="LAKEKIT_URL"):
        load_config(env={})


def test_unknown_setting_names_the_setting_its_origin_and_what_is_accepted(tmp_path: Path) -> None:
    config = load_config(str(tmp_path), env={"LAKEKIT_STREAM_FSYNK": "always"})
    with pytest.raises(ConfigurationError) as info:
        config.settings("stream", _DemoSettings)
    message = str(info.value)
    assert "'fsynk'" in message
    assert "env LAKEKIT_STREAM_FSYNK" in message
    assert "fsync" in message and "partitions" in message


def test_malformed_setting_names_its_env_variable(tmp_path: Path) -> None:
    config = load_config(str(tmp_path), env={"LAKEKIT_STREAM_PARTITIONS": "many"})
    with pytest.raises(ConfigurationError, match="LAKEKIT_STREAM_PARTITIONS"):
        config.settings("stream", _DemoSettings)


def test_missing_required_setting_names_its_env_variable(tmp_path: Path) -> None:
    class Needs(AdapterSettings):
        bucket: str

    config = load_config(str(tmp_path), env={})
    with pytest.raises(ConfigurationError, match="LAKEKIT_STORE_BUCKET"):
        config.settings("store", Needs)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[lake]\nurl = "x"\n[wat]\na = 1\n', r"unknown section \[wat\]"),
        ('[lake]\nurl = "x"\nregion = "eu"\n', "unknown setting"),
        ("[lake\n", "cannot read config file"),
        ('stream = "local"\n', "must be a table"),
    ],
)
def test_bad_config_files_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    cfg = _write(tmp_path / "lakekit.toml", text)
    with pytest.raises(ConfigurationError, match=match):
        load_config(config_file=cfg, env={})


def test_unknown_component_override_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown lake component"):
        load_config(str(tmp_path), env={}, warehouse="x")


def test_settings_repr_hides_passwords_and_secrets() -> None:
    class WithSecret(AdapterSettings):
        api_key: SecretStr

    settings = WithSecret(url="postgresql://lake:hunter2@db/lake", api_key=SecretStr("k-123"))
    text = repr(settings)
    assert "hunter2" not in text and "k-123" not in text
    assert "lake:***@db" in text


def test_env_var_names() -> None:
    assert env_var("lake") == "LAKEKIT_URL"
    assert env_var("catalog") == "LAKEKIT_CATALOG"
    assert env_var("stream", "fsync") == "LAKEKIT_STREAM_FSYNC"


def test_config_repr_redacts_the_lake_url() -> None:
    config = load_config("local://./lake", env={}, catalog="postgresql://u:topsecret@h/db")
    assert "topsecret" not in repr(config)


def test_settings_models_forbid_extra_keys() -> None:
    class Strict(AdapterSettings):
        component: ClassVar[str] = "store"

    with pytest.raises(ValueError, match="Extra inputs"):
        Strict(url="x", nope=1)  # type: ignore[call-arg]
