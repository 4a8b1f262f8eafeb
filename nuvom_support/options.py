"""A plugin factory's ``options``, validated the same way whoever builds the component."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nuvom_kernel.errors import ConfigError
from nuvom_kernel.plugin_settings import SettingsDeclaration, explain

M = TypeVar("M", bound=BaseModel)

__all__ = ["coerce_options"]


def coerce_options(model: type[M], options: M | Mapping[str, Any], owner: str) -> M:
    """A factory's ``options``: the validated model the kernel passes, or a plain
    table (``nuvom plugin test --option``) validated here with the same messages."""
    if isinstance(options, model):
        return options
    values = dict(options)  # type: ignore[arg-type]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        decl = SettingsDeclaration(owner, model, owner)
        raise ConfigError(explain(decl, exc, values, {k: "options" for k in values}, {})) from None
