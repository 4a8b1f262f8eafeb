"""The hook implementations Nuvom loads from the `nuvom` entry point.

Every function here is decorated with `@hookimpl` and named after a hook in
nuvom_kernel/hookspecs.py; a misspelled name fails loading with a
"did you mean" error (`nuvom plugin test {{ cookiecutter.project_slug }}` shows it).
"""

from __future__ import annotations
{% if cookiecutter.kind == "queue-backend" %}
import threading
from pathlib import Path
from typing import Any

from nuvom_kernel import hookimpl
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.hookspecs import RegisterStorage
from nuvom_kernel.settings import NuvomSettings

from {{ cookiecutter.package_name }}.queue import DictQueueBackend, DictStore

NAME = "{{ cookiecutter.component_name }}"
#: The roles this store serves (names from nuvom_kernel.contracts.CAPABILITIES);
#: `nuvom plugin test` checks that the object implements each of them.
ROLES = ("queue", "jobs", "results", "workers")
_lock = threading.Lock()
_data: dict[str, DictStore] = {}


def make_backend(settings: NuvomSettings, options: dict[str, Any]) -> DictQueueBackend:
    """A new backend object per app (the app owns and closes it).  The jobs
    live in this process's memory, so the *data* is shared per project root:
    a producer and a worker in one process see the same jobs.  A store with a
    file or a server would open its own connection here instead."""
    if options:
        raise ConfigError(f"the {NAME} backend takes no options, got {', '.join(sorted(options))}")
    root = str(Path(settings.resolve_path(".")).resolve())
    with _lock:
        data = _data.setdefault(root, DictStore())
    return DictQueueBackend(data)


@hookimpl
def nuvom_register_storage(register: RegisterStorage) -> None:
    register(NAME, make_backend, roles=ROLES, description="jobs in a dict in this process (an example; not durable)")
{% elif cookiecutter.kind == "result-backend" %}
from typing import Any

from nuvom_kernel import hookimpl
from nuvom_kernel.errors import ConfigError
from nuvom_kernel.hookspecs import Register
from nuvom_kernel.settings import NuvomSettings

from {{ cookiecutter.package_name }}.results import JsonFileResultBackend

NAME = "{{ cookiecutter.component_name }}"


def make_backend(settings: NuvomSettings, options: dict[str, Any]) -> JsonFileResultBackend:
    """Options (``[plugins.settings.{{ cookiecutter.project_slug }}]``): ``dir``, relative to the project root."""
    unknown = set(options) - {"dir"}
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))} for the {NAME} result backend; allowed: dir")
    directory = settings.resolve_path(str(options.get("dir", f".nuvom/{NAME}-results")))
    return JsonFileResultBackend(directory)


@hookimpl
def nuvom_register_result_backends(register: Register) -> None:
    register(NAME, make_backend, description="one JSON file per finished job")
{% elif cookiecutter.kind == "executor" %}
from typing import Any

from nuvom_kernel import hookimpl
from nuvom_kernel.hookspecs import Register
from nuvom_kernel.settings import NuvomSettings

from {{ cookiecutter.package_name }}.executor import SimpleThreadExecutor

NAME = "{{ cookiecutter.component_name }}"


def make_executor(settings: NuvomSettings, options: dict[str, Any]) -> SimpleThreadExecutor:
    return SimpleThreadExecutor(NAME)


@hookimpl
def nuvom_register_executors(register: Register) -> None:
    register(NAME, make_executor, description="a thread pool with soft timeouts")
{% elif cookiecutter.kind == "discoverer" %}
from typing import Any

from nuvom_kernel import hookimpl
from nuvom_kernel.hookspecs import Register
from nuvom_kernel.settings import NuvomSettings

from {{ cookiecutter.package_name }}.discoverer import AstTaskDiscoverer

NAME = "{{ cookiecutter.component_name }}"


def make_discoverer(settings: NuvomSettings, options: dict[str, Any]) -> AstTaskDiscoverer:
    return AstTaskDiscoverer()


@hookimpl
def nuvom_register_discoverers(register: Register) -> None:
    register(NAME, make_discoverer, description="finds @task functions with the ast module")
{% elif cookiecutter.kind == "commands" %}
from typing import Any

from nuvom_kernel import hookimpl


@hookimpl
def nuvom_register_commands(app: Any, cli: Any) -> None:
    # typer is imported when the CLI is built, never by workers
    from {{ cookiecutter.package_name }}.commands import register

    register(app, cli)
{% elif cookiecutter.kind == "lifecycle" %}
from nuvom_kernel import hookimpl
from nuvom_kernel.lifecycle import NuvomContext
from nuvom_kernel.models import ErrorInfo, Job
from nuvom_kernel.settings import NuvomSettings

from {{ cookiecutter.package_name }}.observer import COUNTER, log


@hookimpl
def nuvom_configure(settings: NuvomSettings) -> None:
    COUNTER.reset()


@hookimpl
def nuvom_startup(ctx: NuvomContext) -> None:
    log.info("%s %s starting", ctx.role, ctx.worker_id or "")


@hookimpl
def nuvom_job_enqueued(job: Job) -> None:
    COUNTER.add("enqueued", job)


@hookimpl
def nuvom_job_started(job: Job) -> None:
    COUNTER.add("started", job)


@hookimpl
def nuvom_job_retrying(job: Job, error: ErrorInfo | None, delay: float) -> None:
    COUNTER.add("retrying", job, f"in {delay:.1f}s after {error.type if error else 'an error'}")


@hookimpl
def nuvom_job_finished(job: Job, record: Job) -> None:
    COUNTER.add(str(record.state), record)


@hookimpl
def nuvom_job_dead(job: Job, reason: str) -> None:
    COUNTER.add("dead", job, reason)


@hookimpl
def nuvom_shutdown(ctx: NuvomContext) -> None:
    log.info("stopping; job events seen: %s", COUNTER.snapshot())
{% endif -%}
