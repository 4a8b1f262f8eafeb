"""The hot-path shortcuts agree with the slow paths they skip."""

from __future__ import annotations

import random
from typing import Any

import pytest

from nuvom_kernel.builtin_serializers import JsonSerializer
from nuvom_kernel.models import ErrorInfo, Job, JobState
from nuvom_kernel.payloads import _fits_json


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(12 if depth < 3 else 8)
    scalars: list[Any] = [None, True, rng.randrange(-10**20, 10**20), rng.random() * 1e300, float("nan"), float("-inf"),
                          "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 32), 0xE9, 0xD800]))
                                  for _ in range(rng.randrange(0, 250))),
                          rng.randrange(-100, 100)]
    if pick < 8:
        return scalars[pick]
    if pick < 10:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    if pick == 10:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4)))
    keys: list[Any] = ["a", "é", 1, "k" * rng.randrange(0, 50)]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


@pytest.mark.parametrize("limit", [1024, 4096])
def test_fits_json_never_accepts_what_the_serializer_refuses(limit: int) -> None:
    rng = random.Random(limit)
    serializer = JsonSerializer()
    accepted = 0
    for _ in range(5000):
        value = _random_value(rng)
        try:
            ok = len(serializer.dumps(value)) <= limit
        except (TypeError, ValueError):
            ok = False
        if _fits_json(value, limit):
            accepted += 1
            assert ok, value
    assert accepted > 500  # the shortcut is taken for plenty of ordinary values


def test_snapshot_is_an_independent_equal_copy() -> None:
    job = Job(task="t", args=[1, "a", {"b": [1, 2]}], kwargs={"k": [1]}, tags=["x"], result={"r": 1}, progress=[1])
    job.record(JobState.RUNNING, note="n")
    job.errors.append(ErrorInfo(type="E"))
    copy = job.snapshot()
    assert copy == job
    assert copy.model_fields_set == job.model_copy(update={"args": 1, "kwargs": 1, "result": 1, "progress": 1,
                                                            "tags": 1, "history": 1, "errors": 1}).model_fields_set
    copy.args[2]["b"].append(3)
    copy.kwargs["k"].append(2)
    copy.result["r"] = 2
    copy.progress.append(2)
    copy.tags.append("y")
    copy.history.clear()
    copy.errors.clear()
    copy.token = 7
    assert job.args == [1, "a", {"b": [1, 2]}] and job.kwargs == {"k": [1]} and job.result == {"r": 1}
    assert job.progress == [1] and job.tags == ["x"] and len(job.history) == 1 and len(job.errors) == 1
    assert job.token is None
    assert Job.model_validate_json(copy.to_json()).args == copy.args
