"""The DST matrix: cron schedules in zones whose clocks jump, with an injected clock.

Each zone is checked on the night its clocks go forward (a local hour, or half
hour on Lord Howe Island, does not exist) and the night they go back (it
exists twice): a skipped local time fires once at the first instant after
the gap, a repeated one fires once, at its first occurrence.  The last test
drives the real loop minute by minute through both nights.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from nuvom_backend_memory import MemoryBackend
from nuvom_scheduler import SchedulerLoop
from nuvom_scheduler.timing import Defaults, next_cron

from nuvom_kernel.app import Nuvom
from nuvom_kernel.schedules import Schedule

# zone, day the clocks go forward, (gap start, gap end) local, day they go back, (repeat start, repeat end) local
MATRIX = [
    ("America/New_York", (2026, 3, 8), ("02:00", "03:00"), (2026, 11, 1), ("01:00", "02:00")),
    ("Europe/Paris", (2026, 3, 29), ("02:00", "03:00"), (2026, 10, 25), ("02:00", "03:00")),
    ("Australia/Lord_Howe", (2026, 10, 4), ("02:00", "02:30"), (2026, 4, 5), ("01:30", "02:00")),
]
IDS = [row[0] for row in MATRIX]


def local(zone: str, day: tuple[int, int, int], hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(*day, h, m, tzinfo=ZoneInfo(zone))


def midnight_before(zone: str, day: tuple[int, int, int]) -> float:
    return (datetime(*day, tzinfo=ZoneInfo(zone)) - timedelta(hours=1)).timestamp()


def fires(expression: str, zone: str, start: float, end: float) -> list[float]:
    out: list[float] = []
    t: float | None = start
    while True:
        t = next_cron(expression, zone, t)
        if t is None or t > end:
            return out
        out.append(t)


def wall(ts: float, zone: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime("%H:%M%z")


@pytest.mark.parametrize(("zone", "fwd_day", "gap", "back_day", "repeat"), MATRIX, ids=IDS)
def test_a_skipped_time_fires_once_at_the_end_of_the_gap(zone: str, fwd_day: tuple[int, int, int],
                                                         gap: tuple[str, str], back_day: tuple[int, int, int],
                                                         repeat: tuple[str, str]) -> None:
    h, m = map(int, gap[0].split(":"))
    inside = f"{m + 10} {h} * * *"  # ten minutes into the gap: that local time does not exist tonight
    start = midnight_before(zone, fwd_day)
    got = fires(inside, zone, start, start + 3 * 86400)
    end_of_gap = local(zone, fwd_day, gap[1]).timestamp()
    assert got[0] == end_of_gap, [wall(t, zone) for t in got]
    # the next days fire at the written local time again
    assert [datetime.fromtimestamp(t, ZoneInfo(zone)).strftime("%H:%M") for t in got[1:]] == [
        f"{h:02d}:{m + 10:02d}"] * 2


def ten_minute_marks(zone: str, start: float, end: float) -> list[float]:
    """Every instant in (start, end] whose local time is a 10-minute mark, a repeated
    local time counted at its first occurrence only."""
    seen: set[str] = set()
    out: list[float] = []
    t = (int(start) // 60 + 1) * 60
    while t <= end:
        moment = datetime.fromtimestamp(t, ZoneInfo(zone))
        key = moment.strftime("%Y-%m-%d %H:%M")
        if moment.minute % 10 == 0 and key not in seen:
            seen.add(key)
            out.append(float(t))
        t += 60
    return out


@pytest.mark.parametrize(("zone", "fwd_day", "gap", "back_day", "repeat"), MATRIX, ids=IDS)
def test_every_ten_minutes_through_the_gap_fires_each_instant_once(
        zone: str, fwd_day: tuple[int, int, int], gap: tuple[str, str], back_day: tuple[int, int, int],
        repeat: tuple[str, str]) -> None:
    start = midnight_before(zone, fwd_day)
    got = fires("*/10 * * * *", zone, start, start + 6 * 3600)
    end_of_gap = local(zone, fwd_day, gap[1]).timestamp()
    assert end_of_gap in got  # the skipped marks collapse onto the end of the gap, itself a mark
    assert got == ten_minute_marks(zone, start, start + 6 * 3600)


@pytest.mark.parametrize(("zone", "fwd_day", "gap", "back_day", "repeat"), MATRIX, ids=IDS)
def test_a_repeated_time_fires_once_at_its_first_occurrence(
        zone: str, fwd_day: tuple[int, int, int], gap: tuple[str, str], back_day: tuple[int, int, int],
        repeat: tuple[str, str]) -> None:
    h, m = map(int, repeat[0].split(":"))
    inside = f"{m + 10} {h} * * *"  # this local time happens twice tonight
    start = midnight_before(zone, back_day)
    got = fires(inside, zone, start, start + 2 * 86400)
    first = local(zone, back_day, f"{h:02d}:{m + 10:02d}").replace(fold=0).timestamp()
    second = local(zone, back_day, f"{h:02d}:{m + 10:02d}").replace(fold=1).timestamp()
    assert first != second  # the fixture really is a repeated time
    assert got[0] == first and second not in got
    assert got[1] - got[0] > 86400 - 3600  # the next fire is the next day's


@pytest.mark.parametrize(("zone", "fwd_day", "gap", "back_day", "repeat"), MATRIX, ids=IDS)
def test_every_ten_minutes_through_the_repeat_never_fires_a_wall_time_twice(
        zone: str, fwd_day: tuple[int, int, int], gap: tuple[str, str], back_day: tuple[int, int, int],
        repeat: tuple[str, str]) -> None:
    start = midnight_before(zone, back_day)
    got = fires("*/10 * * * *", zone, start, start + 6 * 3600)
    walls = [datetime.fromtimestamp(t, ZoneInfo(zone)).strftime("%H:%M") for t in got]
    assert len(walls) == len(set(walls)), walls
    assert got == ten_minute_marks(zone, start, start + 6 * 3600)


@pytest.mark.parametrize(("zone", "fwd_day", "gap", "back_day", "repeat"), MATRIX, ids=IDS)
def test_the_loop_with_an_injected_clock_fires_the_dst_nights_right(
        zone: str, fwd_day: tuple[int, int, int], gap: tuple[str, str], back_day: tuple[int, int, int],
        repeat: tuple[str, str]) -> None:
    """A loop polled every minute of both nights fires exactly the expected instants, each once."""
    backend = MemoryBackend()
    app = Nuvom(queue=backend, queue_backend="memory", result_backend="memory")
    g_h, g_m = map(int, gap[0].split(":"))
    r_h, r_m = map(int, repeat[0].split(":"))
    for sid, expr, day in (("gap", f"{g_m + 10} {g_h} * * *", fwd_day),
                           ("repeat", f"{r_m + 10} {r_h} * * *", back_day),
                           ("tens", "*/10 * * * *", fwd_day)):
        start = midnight_before(zone, day)
        backend.add_schedule(Schedule(id=f"{sid}-{day[1]}", task="t", kind="cron", cron=expr, timezone=zone,
                                      next_fire_at=next_cron(expr, zone, start), coalesce="all"))
    clock = {"now": 0.0}
    loop = SchedulerLoop(app, clock=lambda: clock["now"], periodic=False, defaults=Defaults(misfire_grace_secs=120))
    for day in sorted((fwd_day, back_day)):
        start = midnight_before(zone, day)
        for minute in range(0, 6 * 60 + 1):
            clock["now"] = start + minute * 60 + 1
            loop.run_once()
    jobs = backend.query_jobs(limit=10_000).jobs
    ids = [j.id for j in jobs]
    assert len(ids) == len(set(ids))

    def etas(prefix: str, day: tuple[int, int, int]) -> list[float]:
        night = midnight_before(zone, day)
        return sorted(j.eta for j in jobs if f"schedule:{prefix}-" in " ".join(j.tags) and j.eta is not None
                      and night <= j.eta <= night + 6 * 3600)

    assert etas("gap", fwd_day) == [local(zone, fwd_day, gap[1]).timestamp()]
    assert etas("repeat", back_day) == [local(zone, back_day, f"{r_h:02d}:{r_m + 10:02d}").timestamp()]
    night = midnight_before(zone, fwd_day)
    tens = sorted(j.eta for j in jobs if "schedule:tens-" in " ".join(j.tags) and j.eta is not None
                  and j.eta <= night + 6 * 3600)
    assert tens == ten_minute_marks(zone, night, night + 6 * 3600)


def test_lord_howe_half_hour_shift_is_really_in_the_matrix() -> None:
    tz = ZoneInfo("Australia/Lord_Howe")
    before = datetime(2026, 10, 3, 12, tzinfo=timezone.utc).astimezone(tz).utcoffset()
    after = datetime(2026, 10, 5, 12, tzinfo=timezone.utc).astimezone(tz).utcoffset()
    assert after is not None and before is not None and (after - before) == timedelta(minutes=30)
