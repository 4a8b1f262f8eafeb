"""What commands share within one ``nuvom`` invocation."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from nuvom_kernel.app import Nuvom
from nuvom_kernel.errors import ConfigError, NuvomError, PluginError
from nuvom_kernel.manager import NuvomPluginManager
from nuvom_kernel.settings import NuvomSettings

#: Exit codes of every command (docs/cli.md).
EXIT_OK = 0
EXIT_FAILURE = 1  # the operation failed (job failed, plugin test failed, ...)
EXIT_USAGE = 2  # bad arguments, bad configuration, unknown id
EXIT_NOT_FOUND = 3  # the job (or other object) does not exist


def apply_log_level(settings: NuvomSettings, handler: logging.Handler | None = None) -> None:
    """Make ``NUVOM_LOG_LEVEL`` take effect on the ``nuvom`` logger, with a handler
    of its own (``handler``, e.g. from a ``nuvom_log_handler`` plugin, or a text
    one).  The ``nuvom`` command's own: as a library, Nuvom never configures
    logging (its ``nuvom.*`` records reach the host's handlers)."""
    logger = logging.getLogger("nuvom")
    logger.setLevel(settings.log_level)
    if not logger.handlers:
        if handler is None:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False



@dataclass
class CliState:
    """One ``nuvom`` invocation: implements the kernel's
    :class:`~nuvom_kernel.components.CommandContext` that command plugins receive."""

    EXIT_OK: ClassVar[int] = EXIT_OK
    EXIT_FAILURE: ClassVar[int] = EXIT_FAILURE
    EXIT_USAGE: ClassVar[int] = EXIT_USAGE
    EXIT_NOT_FOUND: ClassVar[int] = EXIT_NOT_FOUND

    plugins: NuvomPluginManager
    console: Console = field(default_factory=lambda: Console(highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
    _app: Nuvom | None = None
    #: True when an embedding program handed over its app (set_app): its in-memory
    #: backend is shared with that program, so the "separate process" warnings do not apply
    embedded: bool = False
    #: records logged while plugins loaded, replayed once the command's handler is chosen
    early_records: list[logging.LogRecord] = field(default_factory=list)
    #: a plugin's handler (``nuvom_log_handler``) formats the logs: say things through logging
    structured_logs: bool = False

    def app(self, **overrides: Any) -> Nuvom:
        """The Nuvom app for this invocation; a bad setting exits with code 2."""
        if self._app is None or overrides:
            try:
                app = Nuvom(root=self.plugins.root, plugins=self.plugins, **overrides)
            except (ConfigError, PluginError) as exc:
                self.fail(f"configuration error: {exc}", EXIT_USAGE)
            self._configure_logging(app)  # the command owns its process's logging; the library never does
            if overrides:
                return app
            self._app = app
        return self._app

    def _configure_logging(self, app: Nuvom) -> None:
        handler = None
        if not logging.getLogger("nuvom").handlers:  # the first app of this process chooses
            handler = app.plugins.log_handler(app)
            self.structured_logs = handler is not None
        apply_log_level(app.settings, handler)
        self.replay_early_records()

    def replay_early_records(self) -> None:
        """Log what plugin loading said through the handler now in place (or, when
        no app was built, Python's last-resort handler, as before)."""
        records, self.early_records = self.early_records, []
        logger = logging.getLogger("nuvom")
        for record in records:
            if logger.handlers:
                if record.levelno >= logger.getEffectiveLevel():
                    logger.handle(record)
            elif logging.lastResort is not None and record.levelno >= logging.lastResort.level:
                logging.lastResort.handle(record)

    def say(self, markup: str, plain: str, event: str, level: int = logging.INFO, *,
            soft_wrap: bool = False, **fields: Any) -> None:
        """A line for the operator: rich text, or a log record when logs are structured."""
        if self.structured_logs:
            logging.getLogger("nuvom.cli").log(level, plain, extra={"event": event, **fields})
        else:
            self.err.print(markup, soft_wrap=soft_wrap)

    def set_app(self, app: Nuvom) -> None:
        """Use a ready app for this invocation (embedding; tests on the memory backend)."""
        self._app = app
        self.embedded = True

    def fail(self, message: str, code: int = EXIT_FAILURE) -> NoReturn:
        # escape: messages quote install advice like "nuvom[process]", which is not markup
        self.err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # one line; the terminal wraps it
        raise typer.Exit(code)

    def process_local_backend(self, app: Nuvom) -> bool:
        """True if ``app`` keeps its queue in this process's memory while this
        command runs as a process of its own (nobody else can see its jobs)."""
        return not self.embedded and app.settings.queue_backend == "memory"

    def print_json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def guard(self, exc: NuvomError) -> NoReturn:
        from nuvom_kernel.errors import InvalidIdError, InvalidStateError, JobNotFoundError

        if isinstance(exc, JobNotFoundError):
            self.fail(str(exc), EXIT_NOT_FOUND)
        if isinstance(exc, (InvalidIdError, ConfigError, InvalidStateError)):
            self.fail(str(exc), EXIT_USAGE)
        self.fail(str(exc), EXIT_FAILURE)


_state: CliState | None = None


def set_state(state: CliState) -> None:
    global _state
    _state = state


def state() -> CliState:
    if _state is None:
        set_state(CliState(plugins=NuvomPluginManager()))
    assert _state is not None
    return _state
