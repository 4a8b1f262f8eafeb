"""The plugin is found through its entry point and does its job."""

from __future__ import annotations

from pathlib import Path

from nuvom_kernel.manager import NuvomPluginManager

DIST = "{{ cookiecutter.project_slug }}"
{%- if cookiecutter.kind == "queue-backend" %}
PROVIDES = {"queue_backends": ["{{ cookiecutter.component_name }}"], "result_backends": ["{{ cookiecutter.component_name }}"]}
{%- elif cookiecutter.kind == "result-backend" %}
PROVIDES = {"result_backends": ["{{ cookiecutter.component_name }}"]}
{%- elif cookiecutter.kind == "executor" %}
PROVIDES = {"executors": ["{{ cookiecutter.component_name }}"]}
{%- elif cookiecutter.kind == "discoverer" %}
PROVIDES = {"discoverers": ["{{ cookiecutter.component_name }}"]}
{%- else %}
PROVIDES: dict[str, list[str]] = {}
{%- endif %}


def manager(root: Path) -> NuvomPluginManager:
    """A plugin manager that loads only this plugin, from its entry point."""
    return NuvomPluginManager(root, environ={"NUVOM_LOAD_PLUGINS": DIST}).load()


def test_plugin_appears_in_the_plugin_list(tmp_path: Path) -> None:
    records = {r.name: r for r in NuvomPluginManager(tmp_path, environ={}).plugin_status()}
    assert DIST in records, f"{DIST} is not loaded: is it installed (pip install -e .)?"
    record = records[DIST]
    assert record.loaded and record.error is None, record.error
    assert record.origin == "entry point"
    assert record.provides == PROVIDES
{%- if cookiecutter.kind == "queue-backend" %}


def test_factory_makes_an_object_per_app_over_data_per_project_root(tmp_path: Path) -> None:
    from nuvom_kernel.models import Job
    from nuvom_kernel.settings import NuvomSettings

    pm = manager(tmp_path)
    registration = pm.registries["queue_backends"].get("{{ cookiecutter.component_name }}")
    assert registration.roles == {"queue", "jobs", "results", "workers"}
    here = NuvomSettings.model_validate({"project_root": str(tmp_path / "a")})
    there = NuvomSettings.model_validate({"project_root": str(tmp_path / "b")})
    first, second, other = (registration.factory(s, {}) for s in (here, here, there))
    assert first is not second
    job = first.enqueue(Job(task="t"))
    assert second.get(job.id) is not None and other.get(job.id) is None
{%- elif cookiecutter.kind == "result-backend" %}


def test_dir_option_is_relative_to_the_project_root(tmp_path: Path) -> None:
    from nuvom_kernel.settings import NuvomSettings

    pm = manager(tmp_path)
    registration = pm.registries["result_backends"].get("{{ cookiecutter.component_name }}")
    settings = NuvomSettings.model_validate({"project_root": str(tmp_path)})
    backend = registration.factory(settings, {"dir": "results"})
    assert backend.directory == tmp_path / "results" and backend.directory.is_dir()
{%- elif cookiecutter.kind == "commands" %}


def test_hello_command(tmp_path: Path) -> None:
    import json

    import typer
    from nuvom_cli.state import CliState
    from typer.testing import CliRunner

    app = typer.Typer()
    plugins = manager(tmp_path)
    plugins.register_commands(app, cli=CliState(plugins=plugins))
    app.command("noop")(lambda: None)  # two commands, so typer keeps `hello` as a subcommand
    result = CliRunner().invoke(app, ["hello", "--name", "Ada", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["message"] == "Hello, Ada!"
    assert CliRunner().invoke(app, ["hello", "--name", " "]).exit_code == 2  # bad usage, as in every command
{%- elif cookiecutter.kind == "lifecycle" %}


def test_job_events_are_counted(tmp_path: Path) -> None:
    from nuvom_support.backend_base import claim_update, enqueue_update, finish_update
    from nuvom_kernel.models import Job, Outcome
    from nuvom_kernel.settings import NuvomSettings

    from {{ cookiecutter.package_name }}.observer import COUNTER

    pm = manager(tmp_path)
    pm.configure(NuvomSettings.model_validate({"project_root": str(tmp_path)}))
    job = enqueue_update(Job(task="example.add", args=[1, 2]))
    pm.job_enqueued(job)
    claim_update(job, 1, 30.0, "w1")
    pm.job_started(job)
    record = job.model_copy(deep=True)
    assert finish_update(record, 1, Outcome(kind="succeeded", result=3))
    pm.job_finished(job, record)
    pm.job_dead(job, "example")
    assert COUNTER.snapshot() == {"enqueued": 1, "started": 1, "succeeded": 1, "dead": 1}
{%- endif %}
