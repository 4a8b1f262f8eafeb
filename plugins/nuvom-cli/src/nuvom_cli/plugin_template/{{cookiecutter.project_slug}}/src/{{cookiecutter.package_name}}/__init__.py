"""{{ cookiecutter.description }}."""

from __future__ import annotations

__version__ = "{{ cookiecutter.version }}"
