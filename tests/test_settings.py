"""Settings: sources, precedence, validation, warnings, log level."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from nuvom_cli.state import apply_log_level

from nuvom_kernel.errors import ConfigError
from nuvom_kernel.settings import NuvomSettings, load_settings


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={}).settings
    assert (s.queue_backend, s.result_backend, s.executor) == ("sqlite", "sqlite", "thread")
    assert s.max_workers == (os.cpu_count() or 1)
    assert (s.job_timeout_secs, s.timeout_policy, s.max_retries) == (300.0, "fail", 0)
    assert s.resolve_path(".nuvom/result.db", tmp_path) == tmp_path / ".nuvom" / "result.db"


def test_precedence_environment_dotenv_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.nuvom]\nmax_workers = 3\nbatch_size = 7\nlease_secs = 11\n", encoding="utf-8")
    (tmp_path / ".env").write_text(
        "# comment\nNUVOM_BATCH_SIZE=8\nexport NUVOM_LEASE_SECS='12'\nNUVOM_MAX_WORKERS=4\n", encoding="utf-8")
    loaded = load_settings(tmp_path, environ={"NUVOM_MAX_WORKERS": "5"})
    s = loaded.settings
    assert (s.max_workers, s.batch_size, s.lease_secs) == (5, 8, 12.0)
    assert loaded.sources["max_workers"] == "environment"  # .env never overrides the environment
    assert loaded.sources["batch_size"] == ".env"
    assert loaded.sources["job_timeout_secs"] == "default"
    only_pyproject = load_settings(tmp_path, environ={}).settings
    assert only_pyproject.max_workers == 4  # .env beats pyproject


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("NUVOM_TIMEOUT_POLICY", "explode", "one of retry, fail, ignore"),
        ("NUVOM_MAX_WORKERS", "many", "an integer >= 1"),
        ("NUVOM_MAX_WORKERS", "0", "an integer >= 1"),
        ("NUVOM_LOG_LEVEL", "loud", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("NUVOM_LEASE_SECS", "-1", "a finite number >= 1 and <= 86400"),
    ],
)
def test_invalid_values_name_key_value_and_allowed(tmp_path: Path, key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={key: value})
    message = str(info.value)
    assert key in message and repr(value) in message and expected in message


def test_unknown_key_warns_with_suggestion(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, environ={"NUVOM_MAX_WORKRS": "3"})
    assert any("did you mean NUVOM_MAX_WORKERS" in note for note in loaded.warnings)


def test_legacy_keys_warn_but_load(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, environ={"NUVOM_SQLITE_QUEUE_PATH": "x.db", "NUVOM_QUEUE_BACKEND": "Memory"})
    assert any("NUVOM_SQLITE_QUEUE_PATH" in note for note in loaded.warnings)


def test_zero_timeout_means_none_and_zero_delay_is_zero(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={"NUVOM_JOB_TIMEOUT_SECS": "0", "NUVOM_RETRY_DELAY_SECS": "0"}).settings
    assert s.job_timeout_secs is None and s.retry_delay_secs == 0.0


def test_bad_pyproject_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nuvom\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot parse TOML"):
        load_settings(tmp_path, environ={})


def test_log_level_is_applied_by_the_command_line_helper() -> None:
    logger = logging.getLogger("nuvom")
    before = (list(logger.handlers), logger.propagate, logger.level)
    try:
        apply_log_level(NuvomSettings(log_level="ERROR"))
        assert logger.level == logging.ERROR
        apply_log_level(NuvomSettings(log_level="debug"))
        assert logger.level == logging.DEBUG
    finally:  # the library never configures logging; undo what the CLI helper did
        logger.handlers[:] = before[0]
        logger.propagate, logger.level = before[1], before[2]
