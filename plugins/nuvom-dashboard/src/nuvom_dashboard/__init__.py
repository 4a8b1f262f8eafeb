"""A web dashboard for Nuvom, read from the job store (``nuvom dashboard``).

Embed it in a host application with :func:`create_app`::

    from nuvom_dashboard import DashboardOptions, create_app
    asgi_app = create_app(nuvom_app, DashboardOptions(read_only=True))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_dashboard.options import DashboardOptions
    from nuvom_dashboard.web import create_app

__all__ = ["DashboardOptions", "create_app"]

__getattr__ = lazy_exports(__name__, {"DashboardOptions": "options", "create_app": "web"})
