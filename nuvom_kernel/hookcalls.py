"""How one plugin's hook implementations are wrapped before pluggy sees them.

Every hook is called through ``pm.hook`` (so pluggy's ordering, argument
subsets, ``wrapper=True`` and old-style ``hookwrapper=True`` implementations
and hook-call monitoring all apply).  What pluggy does not do is isolate one
plugin from another: an exception in one implementation stops the whole call.
So the manager registers, for each plugin, a :class:`GuardedPlugin` whose
attributes are the plugin's implementations wrapped by :func:`guard`:

- a plain implementation runs with :data:`current_plugin` set (registration
  callbacks use it to know who registers a name); an exception is handed to
  ``on_error`` (which logs and records it, and may re-raise) and the call goes
  on with the next implementation;
- a wrapper's own exceptions (before its ``yield``, or a different exception
  after it) are handed to ``on_error`` and the wrapped call proceeds as if the
  wrapper were not there; the exception of the wrapped call itself still
  reaches the caller, and a value the wrapper returns is the call's result.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from contextvars import ContextVar
from typing import Any

from nuvom_kernel.errors import PluginError

#: The plugin whose hook implementation is running (set only while it runs).
current_plugin: ContextVar[str | None] = ContextVar("nuvom_current_plugin", default=None)

OnError = Callable[[str, str, BaseException], None]


class GuardedPlugin:
    """What pluggy registers for one plugin: its guarded implementations."""

    def __init__(self, original: Any, name: str) -> None:
        self.original = original
        self.name = name

    def __repr__(self) -> str:
        return f"<nuvom plugin {self.name}: {self.original!r}>"


def guarded_plugin(original: Any, name: str, impls: dict[str, tuple[str, dict[str, Any]]],
                   on_error: OnError, unguarded: frozenset[str] = frozenset()) -> GuardedPlugin:
    """``impls`` maps attribute name -> (hook name, pluggy hookimpl options)."""
    proxy = GuardedPlugin(original, name)
    for attr, (hook, opts) in impls.items():
        function = getattr(original, attr)
        if (opts.get("wrapper") or opts.get("hookwrapper")) and not inspect.isgeneratorfunction(function):
            kind = "wrapper=True" if opts.get("wrapper") else "hookwrapper=True"
            raise PluginError(
                f"plugin {name!r}: {attr} is declared with {kind} but is not a generator function; "
                "a wrapper must `yield` exactly once (see docs/hooks.md)"
            )
        setattr(proxy, attr, function if hook in unguarded else guard(function, name, hook, opts, on_error))
    return proxy


def guard(function: Callable[..., Any], plugin: str, hook: str, opts: dict[str, Any],
          on_error: OnError) -> Callable[..., Any]:
    if opts.get("wrapper"):
        return _guard_wrapper(function, plugin, hook, on_error)
    if opts.get("hookwrapper"):
        return _guard_old_wrapper(function, plugin, hook, on_error)

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        token = current_plugin.set(plugin)
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            on_error(plugin, hook, exc)
            return None
        finally:
            current_plugin.reset(token)

    return guarded


def _second_yield(plugin: str, hook: str) -> RuntimeError:
    return RuntimeError(f"the wrapper of plugin {plugin!r} for {hook} yielded more than once")


def _guard_wrapper(function: Callable[..., Any], plugin: str, hook: str, on_error: OnError) -> Callable[..., Any]:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Generator[None, Any, Any]:
        try:
            gen = function(*args, **kwargs)
            next(gen)
        except StopIteration:
            on_error(plugin, hook, RuntimeError(f"the wrapper of plugin {plugin!r} for {hook} did not yield"))
            return (yield)
        except Exception as exc:
            on_error(plugin, hook, exc)
            return (yield)
        try:
            result = yield
        except BaseException as exc:  # the wrapped call raised: the wrapper sees it
            try:
                gen.throw(exc)
            except StopIteration as stop:
                return stop.value  # the wrapper handled it and returned a value
            except BaseException as raised:
                if raised is exc or not isinstance(raised, Exception):
                    raise
                on_error(plugin, hook, raised)
                raise exc from None
            gen.close()
            on_error(plugin, hook, _second_yield(plugin, hook))
            raise
        try:
            gen.send(result)
        except StopIteration as stop:
            return stop.value
        except Exception as raised:
            on_error(plugin, hook, raised)
            return result
        gen.close()
        on_error(plugin, hook, _second_yield(plugin, hook))
        return result

    return guarded


def _guard_old_wrapper(function: Callable[..., Any], plugin: str, hook: str, on_error: OnError) -> Callable[..., Any]:
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Generator[None, Any, None]:
        try:
            gen = function(*args, **kwargs)
            next(gen)
        except StopIteration:
            on_error(plugin, hook, RuntimeError(f"the hookwrapper of plugin {plugin!r} for {hook} did not yield"))
            yield
            return
        except Exception as exc:
            on_error(plugin, hook, exc)
            yield
            return
        outcome = yield
        try:
            gen.send(outcome)
        except StopIteration:
            return
        except Exception as raised:
            on_error(plugin, hook, raised)
            return
        gen.close()
        on_error(plugin, hook, _second_yield(plugin, hook))

    return guarded
