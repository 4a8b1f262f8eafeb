"""The Grafana dashboard and the alert rules in docs/ use only metrics, labels and
values the plugin exposes, and the docs list every metric."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from nuvom_metrics_prometheus.collector import make_registry
from nuvom_metrics_prometheus.plugin import metrics_dir
from nuvom_metrics_prometheus.recorder import COUNTERS, HISTOGRAMS, OUTCOMES, Recorder
from prometheus_client.exposition import generate_latest

from nuvom_kernel.app import Nuvom
from nuvom_kernel.models import Job, JobState
from nuvom_kernel.schedules import Schedule

DOCS = Path(__file__).resolve().parents[3] / "docs"


def exposed(tmp_path: Path) -> tuple[set[str], set[str]]:
    """Every sample name a scrape can contain, and every family name."""
    recorder = Recorder(metrics_dir(tmp_path))
    for name, (_, labels) in COUNTERS.items():
        recorder.inc(name, dict.fromkeys(labels, "x"))
    for name, (_, labels) in HISTOGRAMS.items():
        recorder.observe(name, dict.fromkeys(labels, "x"), 1.0)
    recorder.close()
    app = Nuvom(root=tmp_path, environ={"NUVOM_QUEUE_BACKEND": "memory", "NUVOM_RESULT_BACKEND": "memory"})
    app.enqueue(Job(task="x"))  # a queue, so that depth has samples
    app.schedules.add_schedule(Schedule(id="s", task="x", kind="at", at=1.0, next_fire_at=1.0))  # and schedules
    text = generate_latest(make_registry(app, metrics_dir(tmp_path))).decode()
    app.close()
    samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    families = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    return samples, families


def exprs_of_dashboard() -> list[str]:
    dashboard = json.loads((DOCS / "metrics" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def check(expr: str, samples: set[str]) -> None:
    names = set(re.findall(r"\bnuvom_\w+", expr))
    assert names and names <= samples, f"{expr}: unknown {names - samples}"
    for values in re.findall(r'outcome=~?"([^"]+)"', expr):
        assert set(values.split("|")) <= set(OUTCOMES), expr
    for values in re.findall(r'state=~?"([^"]+)"', expr):
        assert set(values.split("|")) <= {s.value for s in JobState}, expr


def test_the_dashboard_queries_only_what_the_plugin_exposes(tmp_path: Path) -> None:
    samples, _ = exposed(tmp_path)
    exprs = exprs_of_dashboard()
    assert len(exprs) >= 10
    for expr in exprs:
        check(expr, samples)
    used = {n for e in exprs for n in re.findall(r"\bnuvom_\w+", e)}
    assert {"nuvom_workers_up", "nuvom_jobs", "nuvom_job_run_seconds_bucket",
            "nuvom_job_queue_wait_seconds_bucket", "nuvom_jobs_finished_total", "nuvom_schedule_fires_total",
            "nuvom_schedule_skips_total", "nuvom_schedule_next_fire_timestamp_seconds"} <= used


def test_the_two_alert_rules_query_only_what_the_plugin_exposes(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    samples, _ = exposed(tmp_path)
    rules = yaml.safe_load((DOCS / "metrics" / "alerts.yml").read_text(encoding="utf-8"))["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == ["NuvomJobsFailing", "NuvomNoWorkers"]
    for rule in rules:
        check(rule["expr"], samples)
        assert rule["for"] and rule["labels"]["severity"] and rule["annotations"]["summary"]


def test_observability_md_lists_every_metric(tmp_path: Path) -> None:
    _, families = exposed(tmp_path)
    text = (DOCS / "observability.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(nuvom_\w+)` \|", text, re.M))
    counters = {f"{name}_total" for name in COUNTERS}
    assert documented == (families - set(COUNTERS)) | counters
