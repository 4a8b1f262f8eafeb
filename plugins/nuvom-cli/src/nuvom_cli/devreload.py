"""``nuvom runworker --dev``: reload task modules when their files change.

A polling watcher (no extra dependency, works the same on every OS): every
``interval`` seconds it refreshes the discovery manifest — cheap, unchanged
files are not parsed — imports modules that appeared, reloads modules whose
file changed, and forgets tasks that disappeared.  Jobs already running keep
the code they started with; the next job of a task runs the new code.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from typing import Any

from nuvom_kernel.task import registry
from nuvom_support.loader import ensure_on_path, import_task_modules, pick_discoverer

log = logging.getLogger("nuvom.dev")


def _stamp(module_name: str) -> tuple[int, int] | None:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class DevReloader:
    def __init__(self, app: Any, *, modules: list[str] | None = None, interval: float = 1.0) -> None:
        self.app = app
        self.interval = interval
        self.extra = list(modules or [])
        self.generation = 0  # bumped after every reload that changed something
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._discoverer = pick_discoverer(app)
        for name in self._modules():
            self._stamps[name] = _stamp(name)

    def _modules(self) -> list[str]:
        names = list(self.extra)
        names += sorted({t.module for t in (registry.find(n) for n in registry.names()) if t is not None
                         and t.module in sys.modules and t.module != "__main__"})
        return list(dict.fromkeys(names))

    def check_once(self) -> list[str]:
        """Look for changes now; return the modules (re)loaded."""
        changed: list[str] = []
        manifest_tasks: dict[str, str] | None = None
        if self._discoverer is not None:
            from nuvom_support.manifest import (
                default_manifest_path,
                manifest_import_paths,
                manifest_modules,
                refresh_manifest,
                scan_root_of,
            )

            project = self.app.root
            diff = refresh_manifest(self._discoverer, None, default_manifest_path(self.app.settings, project),
                                    project=project)
            for directory in manifest_import_paths(diff.manifest, scan_root_of(diff.manifest, project)):
                ensure_on_path(directory)
            manifest_tasks = manifest_modules(diff.manifest)
            new_modules = [m for m in dict.fromkeys(manifest_tasks.values()) if m not in sys.modules]
            if new_modules:
                import_task_modules(new_modules, self.app.root)
                for m in new_modules:
                    self._stamps[m] = _stamp(m)
                changed += new_modules
        for name in self._modules():
            stamp = _stamp(name)
            if name in self._stamps and stamp != self._stamps[name] and name in sys.modules:
                before = {n for n in registry.names() if (t := registry.find(n)) is not None and t.module == name}
                try:
                    importlib.reload(sys.modules[name])
                except Exception:
                    log.exception("dev reload of %s failed; the previous version stays loaded", name)
                else:
                    after = {n for n in registry.names() if (t := registry.find(n)) is not None and t.module == name}
                    for gone in before - after:
                        registry.remove(gone)
                    changed.append(name)
                    log.info("reloaded %s (%d task(s))", name, len(after))
            self._stamps[name] = stamp
        if manifest_tasks is not None:
            for name in registry.names():
                task = registry.find(name)
                if task is not None and task.module in sys.modules and task.module in set(manifest_tasks.values()) \
                        and name not in manifest_tasks:
                    registry.remove(name)
        if changed:
            self.generation += 1
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception:
                log.exception("dev reload check failed (will retry)")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nuvom-dev-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
