"""Help output in click's conventions: ``JOB_ID`` not ``{job_id}``, no ``<bool>`` on flags.

Recent typer releases write every required argument as ``{name}`` in usage
lines and a type such as ``<bool>`` after every flag.  :func:`apply` restores
what click (and Nuvom's docs) show: upper-case argument names, ``[NAME]`` for
optional ones, and flags without a type.  It changes only help text and the
argument name in "missing argument" errors, and does nothing on a typer
without these methods.
"""

from __future__ import annotations

from typing import Any


def _argument_name(param: Any) -> str:
    metavar = getattr(param, "metavar", None)
    return str(metavar) if metavar else str(param.name or "").upper()


def _usage_name(param: Any) -> str:
    name = _argument_name(param)
    name = name if param.required else f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


def _option_type(original: Any) -> Any:
    def display_type_rich(self: Any, ctx: Any) -> str | None:  # ctx: typer's click Context
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return original(self, ctx)  # type: ignore[no-any-return]

    return display_type_rich


def apply() -> None:
    """Patch typer's argument and option classes once (idempotent)."""
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:  # pragma: no cover - typer moved them; keep its own help
        return
    if getattr(TyperOption, "_nuvom_help", False):
        return
    if isinstance(getattr(TyperArgument, "display_name_raw", None), property):
        TyperArgument.display_name_raw = property(_argument_name)  # type: ignore[method-assign,assignment]
    if hasattr(TyperArgument, "_usage_display_name"):
        TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign,assignment]
    if hasattr(TyperOption, "display_type_rich"):
        TyperOption.display_type_rich = _option_type(TyperOption.display_type_rich)  # type: ignore[method-assign]
    TyperOption._nuvom_help = True  # type: ignore[attr-defined]
