"""Helpers that plugins and tools share, built on the kernel (the kernel never
imports them): the state-machine steps and defaults of queue backends
(:mod:`~nuvom_support.backend_base`), private files and atomic replace
(:mod:`~nuvom_support.files`), the UDP doorbell of the embedded backends
(:mod:`~nuvom_support.doorbell`), the task manifest and the loading of task
modules from it (:mod:`~nuvom_support.manifest`, :mod:`~nuvom_support.loader`),
the rules every schedule store applies (:mod:`~nuvom_support.schedules`), a
plugin factory's options validated (:mod:`~nuvom_support.options`), the
Nuvom 0.11 plugin adapter (:mod:`~nuvom_support.legacy`, itself a plugin)
and the operations behind the SDK, the CLI and the dashboard
(:mod:`~nuvom_support.operations`)."""
