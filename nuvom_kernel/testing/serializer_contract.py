"""``SerializerContract``: what a serializer must do to carry arguments and results.

Subclass with a ``serializer`` fixture returning your serializer::

    class TestMySerializer(SerializerContract):
        @pytest.fixture
        def serializer(self):
            return MySerializer()

Besides the round trips, one test runs a real job through an app using the
serializer (memory backend, an in-process worker): the arguments are stored
encoded, the task receives them as passed, and ``handle.result()`` returns
the value the task returned.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from nuvom_kernel.contracts import Serializer
from nuvom_kernel.models import JobState
from nuvom_kernel.payloads import MARK, args_envelope, is_envelope, unwrap, wrap

#: JSON-like values every serializer must round-trip exactly.
VALUES: list[Any] = [
    None, True, False, 0, -1, 2**53, -(2**63), 2**63 - 1, 1.5, -0.25, "", "text", "ünïcödé ✓ 漢字",
    [], [1, "two", None, [3.0, {"k": []}]], {}, {"a": 1, "b": [True, None], "nested": {"deep": {"deeper": "x"}}},
    {"": "empty key", "with space": 1}, ["x" * 10_000],
]


class SerializerContract:
    """Rules for a serializer; the subclass provides the ``serializer`` fixture."""

    def test_has_a_name(self, serializer: Serializer) -> None:
        assert isinstance(serializer.name, str) and serializer.name.strip() == serializer.name != ""

    @pytest.mark.parametrize("value", VALUES, ids=[f"v{i}" for i in range(len(VALUES))])
    def test_round_trips_json_like_values(self, serializer: Serializer, value: Any) -> None:
        data = serializer.dumps(value)
        assert isinstance(data, bytes)
        assert serializer.loads(data) == value

    def test_tuples_may_come_back_as_lists(self, serializer: Serializer) -> None:
        assert serializer.loads(serializer.dumps({"t": (1, 2)})) in ({"t": [1, 2]}, {"t": (1, 2)})

    def test_refuses_what_it_cannot_encode_with_type_or_value_error(self, serializer: Serializer) -> None:
        # the app turns these two into PayloadError for the caller of .delay()
        with pytest.raises((TypeError, ValueError)):
            serializer.dumps({"x": object()})

    def test_garbage_raises_instead_of_returning_something(self, serializer: Serializer) -> None:
        with pytest.raises(Exception):  # noqa: B017 - any error; never a silent value
            serializer.loads(b"\xc1\xff\x00garbage\x93")

    def test_the_envelope_round_trips(self, serializer: Serializer) -> None:
        value = {"args": [1, "x"], "kwargs": {"k": [None]}}
        envelope = wrap(serializer, serializer.dumps(value))
        assert is_envelope(envelope) and envelope[MARK] == serializer.name
        assert unwrap(envelope, serializer) == value

    def test_a_job_runs_through_an_app_using_it(self, serializer: Serializer, tmp_path: Path) -> None:
        from nuvom_kernel.app import Nuvom
        from nuvom_kernel.worker import Worker

        app = Nuvom(root=tmp_path, environ={}, queue_backend="memory", result_backend="memory",
                    serializer=serializer, log_level="WARNING", poll_interval_secs=0.1)
        if "memory" not in app.plugins.registries["queue_backends"]:  # pragma: no cover - ships with `pip install nuvom`
            pytest.skip("the end-to-end serializer test needs the memory backend (nuvom-backend-memory)")
        seen: list[Any] = []

        @app.task(name="contract.serializer.echo")
        def echo(*args: Any, **kwargs: Any) -> Any:
            seen.append((list(args), kwargs))
            return {"args": list(args), "kwargs": kwargs}

        args, kwargs = [1, "two", [3.5, None]], {"flag": True, "text": "ünï"}
        handle = echo.delay(*args, **kwargs)
        stored = app.jobs.get(handle.id)
        assert stored is not None
        if serializer.name != "json":  # stored encoded, inside a JSON envelope naming the serializer
            envelope = args_envelope(stored.args, stored.kwargs)
            assert envelope is not None and envelope[MARK] == serializer.name
        worker = Worker(app, concurrency=1, burst=True)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            assert handle.result(timeout=30) == {"args": args, "kwargs": kwargs}
            final = app.jobs.get(handle.id)
            assert final is not None and final.state == JobState.SUCCEEDED
        finally:
            worker.request_stop()
            thread.join(30)
            app.close()
        assert seen == [(args, kwargs)]
