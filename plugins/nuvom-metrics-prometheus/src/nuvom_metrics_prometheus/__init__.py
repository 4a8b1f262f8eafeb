"""Prometheus metrics for Nuvom.

Installed, it counts job events in every process of a project (enqueued,
started, finished by outcome; run time and queue wait histograms) and
reports queue depth and workers from the store.  Serve them from a worker
(``nuvom runworker --metrics-port 9150`` or ``NUVOM_PROMETHEUS__PORT``) or on
their own (``nuvom metrics serve``); docs/observability.md.
"""

from typing import TYPE_CHECKING

from nuvom_support.lazy import lazy_exports

if TYPE_CHECKING:
    from nuvom_metrics_prometheus.collector import NuvomCollector, make_registry
    from nuvom_metrics_prometheus.options import PrometheusOptions
    from nuvom_metrics_prometheus.recorder import Recorder, read_families
    from nuvom_metrics_prometheus.server import MetricsServer

__all__ = ["MetricsServer", "NuvomCollector", "PrometheusOptions", "Recorder", "make_registry", "read_families"]

__getattr__ = lazy_exports(__name__, {"NuvomCollector": "collector", "make_registry": "collector", "PrometheusOptions": "options", "Recorder": "recorder", "read_families": "recorder", "MetricsServer": "server"})
