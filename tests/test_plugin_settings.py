"""Plugin-owned settings: a model per plugin, layered with provenance, validated, secrets masked."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from support import nuvom_cmd, subprocess_env

from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.manager import NuvomPluginManager
from nuvom_kernel.settings import load_settings

PLUGIN = """
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nuvom_kernel import hookimpl


class CacheOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = "redis://127.0.0.1:6379/0"
    password: SecretStr = SecretStr("")
    pool_size: int = Field(4, ge=1, le=64)
    region: str = "eu"
    mode: str = "fast"


class Queue:
    def __init__(self, options):
        self.options = options


@hookimpl
def nuvom_register_settings(register):
    register("cache", CacheOptions, env={"url": "NUVOM_CACHE_URL", "password": ["NUVOM_CACHE_PASSWORD"]})


@hookimpl
def nuvom_register_queue_backends(register):
    register("cacheq", lambda settings, options: Queue(options))
"""


def _project(tmp_path: Path) -> None:
    (tmp_path / "cache_plugin.py").write_text(PLUGIN, encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text(textwrap.dedent("""
        [plugins]
        modules = ["./cache_plugin.py"]

        [plugins.settings.cache]
        region = "from-plugins-file"
        mode = "plugins-file"
        pool_size = 2
        password = {"$env" = "CACHE_SECRET"}
    """), encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.nuvom]
        queue_backend = "cacheq"

        [tool.nuvom.cache]
        mode = "pyproject"
        pool_size = 3
        url = "redis://:${CACHE_SECRET}@cache:6379/1"
    """), encoding="utf-8")
    (tmp_path / ".env").write_text("NUVOM_CACHE__POOL_SIZE=5\n", encoding="utf-8")


def test_each_source_with_provenance_and_the_factory_gets_the_model(tmp_path: Path) -> None:
    _project(tmp_path)
    environ = {"CACHE_SECRET": "s3cret", "NUVOM_CACHE__MODE": "environment"}
    app = Nuvom(root=tmp_path, environ=environ)
    assert app.loaded.warnings == []  # no "unknown setting" for the plugin's variables
    resolved = app.plugin_settings["cache"]
    values = resolved.values
    assert values.mode == "environment" and resolved.sources["mode"] == "environment (NUVOM_CACHE__MODE)"
    assert values.pool_size == 5 and resolved.sources["pool_size"] == ".env (NUVOM_CACHE__POOL_SIZE)"
    assert values.url == "redis://:s3cret@cache:6379/1"
    assert resolved.sources["url"] == "pyproject.toml [tool.nuvom.cache]"
    assert values.region == "from-plugins-file"
    assert resolved.sources["region"] == ".nuvom_plugins.toml [plugins.settings.cache]"
    assert values.password.get_secret_value() == "s3cret"
    assert resolved.sources["password"] == ".nuvom_plugins.toml [plugins.settings.cache]"
    assert app.queue.options is values  # type: ignore[attr-defined]
    declared = load_settings(tmp_path, environ={**environ, "NUVOM_CACHE_URL": "redis://declared"},
                             plugins=NuvomPluginManager(tmp_path, environ={}))
    assert declared.plugins["cache"].values.url == "redis://declared"  # type: ignore[attr-defined]
    assert declared.plugins["cache"].sources["url"] == "environment (NUVOM_CACHE_URL)"
    assert declared.warnings == []


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    (tmp_path / "cache_plugin.py").write_text(PLUGIN, encoding="utf-8")
    (tmp_path / ".nuvom_plugins.toml").write_text('[plugins]\nmodules = ["./cache_plugin.py"]\n', encoding="utf-8")
    resolved = Nuvom(root=tmp_path, environ={}).plugin_settings["cache"]
    assert resolved.values.pool_size == 4 and set(resolved.sources.values()) == {"default"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"NUVOM_CACHE__POOL_SIZE": "100"}, "cache setting NUVOM_CACHE__POOL_SIZE='100' (from environment (NUVOM_CACHE__POOL_SIZE)) "
                                            "is invalid: expected an integer >= 1 and <= 64"),
        ({"NUVOM_CACHE__POOL_SIZE": "many"}, "NUVOM_CACHE__POOL_SIZE='many'"),
        ({}, "CACHE_SECRET is not set"),
    ],
)
def test_errors_name_the_key_the_value_and_what_is_allowed(tmp_path: Path, environ: dict[str, str],
                                                            expected: str) -> None:
    _project(tmp_path)
    with pytest.raises(ConfigError) as info:
        Nuvom(root=tmp_path, environ={"CACHE_SECRET": "x", **environ} if environ else {})
    assert expected in str(info.value)


def test_unknown_key_in_a_file_is_an_error_and_in_the_environment_a_warning(tmp_path: Path) -> None:
    _project(tmp_path)
    typo = Nuvom(root=tmp_path, environ={"CACHE_SECRET": "x", "NUVOM_CACHE__POOL_SIZ": "3"})
    assert any("did you mean NUVOM_CACHE__POOL_SIZE" in w for w in typo.loaded.warnings), typo.loaded.warnings
    with (tmp_path / "pyproject.toml").open("a", encoding="utf-8") as fh:
        fh.write('colour = "blue"\n')
    with pytest.raises(ConfigError, match=r"cache setting colour \(from pyproject.toml \[tool.nuvom.cache\]\) "
                                          r"is unknown; \./cache_plugin.py accepts: url, password, pool_size"):
        Nuvom(root=tmp_path, environ={"CACHE_SECRET": "x"})


def test_nuvom_config_shows_plugin_settings_with_sources_and_never_a_secret(tmp_path: Path) -> None:
    _project(tmp_path)
    env = subprocess_env(tmp_path, CACHE_SECRET="s3cret-value", NUVOM_CACHE_PASSWORD="s3cret-value")
    out = subprocess.run(nuvom_cmd() + ["config", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    cache = data["plugins"]["cache"]
    assert cache["plugin"] == "./cache_plugin.py"
    assert cache["settings"]["password"] == {"value": "**********", "source": "environment (NUVOM_CACHE_PASSWORD)",
                                             "env": ["NUVOM_CACHE__PASSWORD", "NUVOM_CACHE_PASSWORD"]}
    assert cache["settings"]["pool_size"]["source"] == ".env (NUVOM_CACHE__POOL_SIZE)"
    assert cache["settings"]["url"]["value"] == "redis://:${CACHE_SECRET}@cache:6379/1"  # the reference, not the secret
    assert data["plugins"]["sqlite"]["settings"]["path"]["value"] == ".nuvom/result.db"
    assert "s3cret-value" not in out.stdout and "s3cret-value" not in out.stderr
    table = subprocess.run(nuvom_cmd() + ["config"], capture_output=True, text=True, env={**env, "COLUMNS": "200"},
                           cwd=tmp_path, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "NUVOM_CACHE__POOL_SIZE" in table.stdout and "s3cret-value" not in table.stdout + table.stderr
    assert "unknown setting" not in table.stderr


def test_sqlite_and_file_options_keep_their_011_names(tmp_path: Path) -> None:
    app = Nuvom(root=tmp_path, environ={"NUVOM_SQLITE_DB_PATH": "data/q.db", "NUVOM_SQLITE_SYNCHRONOUS": "full",
                                         "NUVOM_FILE_BACKEND_DIR": "data/jobs"})
    assert app.loaded.warnings == []
    sqlite, file = app.plugin_settings["sqlite"], app.plugin_settings["file"]
    assert (sqlite.values.path, sqlite.values.synchronous) == ("data/q.db", "FULL")  # type: ignore[attr-defined]
    assert sqlite.sources["path"] == "environment (NUVOM_SQLITE_DB_PATH)"
    assert file.values.dir == "data/jobs"  # type: ignore[attr-defined]
    assert app.queue.path == (tmp_path / "data" / "q.db").resolve()  # type: ignore[attr-defined]
    app.close()
    (tmp_path / "pyproject.toml").write_text('[tool.nuvom]\nsqlite_db_path = "flat.db"\n', encoding="utf-8")
    flat = Nuvom(root=tmp_path, environ={})
    assert flat.plugin_settings["sqlite"].sources["path"] == "pyproject.toml [tool.nuvom] sqlite_db_path"
    assert flat.queue.path == (tmp_path / "flat.db").resolve()  # type: ignore[attr-defined]
    flat.close()
    with pytest.raises(ConfigError, match=r"NUVOM_SQLITE_SYNCHRONOUS='sometimes'.*expected one of NORMAL, FULL"):
        Nuvom(root=tmp_path, environ={"NUVOM_SQLITE_SYNCHRONOUS": "sometimes"})
    with pytest.raises(ConfigError, match=r"NUVOM_FILE__LOCK_STALE_SECS='inf'.*a finite number > 0"):
        Nuvom(root=tmp_path, environ={"NUVOM_FILE__LOCK_STALE_SECS": "inf"})


def test_prometheus_port_is_no_longer_a_kernel_setting(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, environ={"NUVOM_PROMETHEUS_PORT": "9150"})
    assert any("NUVOM_PROMETHEUS_PORT" in w and "has no effect" in w for w in loaded.warnings), loaded.warnings
    assert not hasattr(loaded.settings, "prometheus_port")


def test_keyword_arguments_of_the_app_reach_plugin_settings(tmp_path: Path) -> None:
    """``Nuvom(sqlite_db_path=...)`` (and ``sqlite__path=...``) set the plugin's option, above every file."""
    from nuvom_kernel.app import Nuvom

    for key in ("sqlite_db_path", "sqlite__path"):
        target = tmp_path / f"{key}.db"
        app = Nuvom(root=tmp_path, environ={}, queue_backend="sqlite", result_backend="sqlite", **{key: str(target)})
        try:
            assert app.queue.path == target.resolve()  # type: ignore[attr-defined]
            assert app.plugin_settings["sqlite"].sources["path"] == "argument"
        finally:
            app.close()


def test_a_validators_message_is_the_error_and_a_dict_is_not_called_a_string(tmp_path: Path) -> None:
    from pydantic import BaseModel, ConfigDict, field_validator

    from nuvom_kernel.plugin_settings import SettingsDeclaration, describe_allowed, resolve

    class Labels(BaseModel):
        model_config = ConfigDict(extra="forbid")
        labels: dict[str, str] = {}
        name: str = "x"

        @field_validator("name")
        @classmethod
        def _no_spaces(cls, value: str) -> str:
            if " " in value:
                raise ValueError("a name has no spaces; write it with dashes")
            return value

    decl = SettingsDeclaration("labels", Labels, "nuvom-labels")
    with pytest.raises(ConfigError) as info:
        resolve([decl], tmp_path, {"NUVOM_LABELS__NAME": "a b"}, {}, {})
    assert "NUVOM_LABELS__NAME='a b'" in str(info.value)
    assert "is invalid: a name has no spaces; write it with dashes" in str(info.value)
    assert describe_allowed(Labels, "labels") != "a string"
