"""The context object lifecycle hooks receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nuvom_kernel.settings import NuvomSettings

if TYPE_CHECKING:
    from nuvom_kernel.app import Nuvom


@dataclass
class NuvomContext:
    """What a plugin learns at :func:`~nuvom_kernel.hookspecs.nuvom_startup`.

    ``role`` is ``"worker"`` for ``nuvom runworker`` and ``"testworker"`` for
    ``nuvom runtestworker``; ``worker_id`` is set for both.  ``options`` maps a
    plugin name to its ``[plugins.settings.<name>]`` table.  ``app`` is the
    process's :class:`~nuvom_kernel.app.Nuvom` when one starts it (a worker
    does): its storage roles and ``app.plugin_settings[section].values``, a
    plugin's validated options.
    """

    settings: NuvomSettings
    role: Literal["worker", "testworker", "producer"]
    worker_id: str | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    app: Nuvom | None = None
