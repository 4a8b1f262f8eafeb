"""R10 for numbers: every numeric setting has a range, checked before any job is claimed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import nuvom_cmd, subprocess_env

from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.models import Job, JobState
from nuvom_kernel.settings import NuvomSettings, load_settings

TASKS = """
from nuvom import task

@task(name="ranges.add")
def add(a, b):
    return a + b
"""

#: (variable, value, what the message must say is allowed)
HARMFUL = [
    ("NUVOM_RESULT_TTL_SECS", "-5", "a finite number >= 1"),
    ("NUVOM_JOB_TIMEOUT_SECS", "-1", "a finite number > 0 and <= 2592000"),
    ("NUVOM_LEASE_SECS", "0.001", "a finite number >= 1 and <= 86400"),
    ("NUVOM_POLL_INTERVAL_SECS", "inf", "a finite number >= 0.01 and <= 3600"),
    ("NUVOM_MAX_WORKERS", "100000", "an integer >= 1 and <= 1024"),
    ("NUVOM_LEASE_SECS", "inf", "a finite number"),
    ("NUVOM_LEASE_SECS", "nan", "a finite number"),
    ("NUVOM_SWEEP_INTERVAL_SECS", "nan", "a finite number >= 0.1"),
    ("NUVOM_SWEEP_INTERVAL_SECS", "0", "a finite number >= 0.1"),
    ("NUVOM_JOB_TIMEOUT_SECS", "inf", "a finite number"),
    ("NUVOM_RESULT_TTL_SECS", "inf", "a finite number"),
    ("NUVOM_RESULT_TTL_SECS", "nan", "a finite number"),
    ("NUVOM_RETRY_DELAY_SECS", "-1", "a finite number >= 0"),
    ("NUVOM_MAX_RETRIES", "-1", "an integer >= 0"),
    ("NUVOM_MAX_PAYLOAD_BYTES", "1e12", "an integer >= 1024"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), HARMFUL)
def test_settings_refuse_values_outside_their_range(tmp_path: Path, key: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={key: value})
    message = str(info.value)
    assert f"{key}={value!r}" in message and allowed in message


def test_every_numeric_setting_has_a_finite_range() -> None:
    for name, field in NuvomSettings.model_fields.items():
        annotation = str(field.annotation)
        if "int" not in annotation and "float" not in annotation:
            continue
        bounds = {attr for meta in field.metadata for attr in ("ge", "gt", "le", "lt") if getattr(meta, attr, None) is not None}
        assert bounds & {"ge", "gt"} and bounds & {"le", "lt"}, f"{name} has no lower and upper bound"
        if "float" in annotation:
            assert any(getattr(meta, "allow_inf_nan", None) is False for meta in field.metadata), f"{name} allows inf/nan"


def test_zero_still_means_none_for_timeout_and_ttl(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={"NUVOM_JOB_TIMEOUT_SECS": "0", "NUVOM_RESULT_TTL_SECS": ""}).settings
    assert s.job_timeout_secs is None and s.result_ttl_secs is None


@pytest.mark.parametrize(("key", "value", "allowed"), HARMFUL[:5] + [HARMFUL[6]])
def test_runworker_exits_before_claiming_anything(tmp_path: Path, key: str, value: str, allowed: str) -> None:
    (tmp_path / "tasks.py").write_text(TASKS, encoding="utf-8")
    app = Nuvom(root=tmp_path, environ={})
    job_id = app.enqueue(Job(task="ranges.add", args=[1, 2])).id
    app.close()
    out = subprocess.run(nuvom_cmd() + ["runworker", "--tasks", "tasks", "--burst"], capture_output=True, text=True,
                         cwd=tmp_path, env=subprocess_env(tmp_path, **{key: value}), timeout=120)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert key in out.stderr and repr(value) in out.stderr and allowed in out.stderr
    again = Nuvom(root=tmp_path, environ={})
    job = again.get_job(job_id)
    assert job.state == JobState.QUEUED and job.attempts == 0
    again.close()


def test_runworker_concurrency_flag_is_bounded(tmp_path: Path) -> None:
    out = subprocess.run(nuvom_cmd() + ["runworker", "--concurrency", "100000", "--burst"], capture_output=True,
                         text=True, cwd=tmp_path, env=subprocess_env(tmp_path), timeout=120)
    assert out.returncode == 2 and "1024" in out.stderr
