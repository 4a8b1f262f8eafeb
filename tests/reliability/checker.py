"""The Jepsen-style checker: execution logs + final job states -> anomalies.

Each task appends ``job_id attempt pid token started_at`` to its process's
log (see ``rel_tasks.py``).  After a run:

- *lost*: a job whose enqueue returned, with no execution and no terminal state;
- *duplicate*: a job executed more than once;
- each duplicate must be *explained*: every execution but the last ran in a
  process that was then killed (started before the process died), and the
  next execution started after that kill;
- *unfinished*: still queued/scheduled/running at the end;
- *phantom*: ``succeeded`` without any execution logged;
- *reused tokens*: two executions of one job with the same fencing token.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nuvom_kernel.models import Job, JobState
from reliability.harness import Kill

#: Clock granularity between processes on one host (same time.time() clock).
_CLOCK_SLACK = 0.01


@dataclass
class Execution:
    job_id: str
    attempt: int
    pid: int
    token: int
    at: float
    ended_at: float | None = None  # when the task's code returned, if it did


def read_executions(log_dir: Path) -> tuple[dict[str, list[Execution]], int]:
    """Every complete line of every ``exec-*.log``; also the number of torn lines skipped."""
    out: dict[str, list[Execution]] = collections.defaultdict(list)
    ends: dict[tuple[str, int], float] = {}
    torn = 0
    for path in sorted(log_dir.glob("exec-*.log")):
        data = path.read_bytes().decode("utf-8", errors="replace")
        lines = data.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        elif lines:
            lines.pop()  # a partial last line: the process was killed mid-write
            torn += 1
        for line in lines:
            parts = line.split(" ")
            try:
                ex = Execution(parts[0], int(parts[1]), int(parts[2]), int(parts[3]), float(parts[4]))
            except (IndexError, ValueError):
                torn += 1
                continue
            if parts[5:] == ["end"]:
                ends[(ex.job_id, ex.token)] = ex.at
            else:
                out[ex.job_id].append(ex)
    for execs in out.values():
        execs.sort(key=lambda e: e.token)
        for e in execs:
            e.ended_at = ends.get((e.job_id, e.token))
    return dict(out), torn


@dataclass
class Report:
    enqueued: int
    executions: int
    lost: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)
    duplicates: dict[str, list[Execution]] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    reused_tokens: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    torn_lines: int = 0
    #: duplicates whose earlier execution was still running when its process was
    #: killed: it never logged its end line
    dup_running: int = 0
    #: duplicates whose earlier execution had returned before the process died (it
    #: logged its end line), its outcome not yet written back by the worker
    #: (completions are batched)
    dup_finished: int = 0
    #: most duplicates caused by one kill of executions still running
    max_running_per_kill: int = 0

    @property
    def duplicate_count(self) -> int:
        """Extra executions beyond the first, summed over jobs."""
        return sum(len(v) - 1 for v in self.duplicates.values())

    def summary(self) -> str:
        return (f"enqueued={self.enqueued} executions={self.executions} lost={len(self.lost)} "
                f"unfinished={len(self.unfinished)} duplicates={self.duplicate_count} "
                f"unexplained={len(self.unexplained)} phantom={len(self.phantom)} "
                f"reused_tokens={len(self.reused_tokens)} strangers={len(self.strangers)} "
                f"torn_lines={self.torn_lines} dup_running={self.dup_running} "
                f"dup_finished={self.dup_finished} max_running_per_kill={self.max_running_per_kill} "
                f"states={self.states}")

    def examples(self, limit: int = 5) -> str:
        parts = []
        for name in ("lost", "unfinished", "unexplained", "phantom", "reused_tokens", "strangers"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}: {items[:limit]}")
        return "; ".join(parts)


def check(enqueued: Iterable[str], executions: Mapping[str, list[Execution]],
          final: Mapping[str, Job | None], kills: Iterable[Kill], torn: int = 0) -> Report:
    ids = list(enqueued)
    killed = {k.pid: k for k in kills}
    report = Report(enqueued=len(ids), executions=sum(len(v) for v in executions.values()), torn_lines=torn)
    states: collections.Counter[str] = collections.Counter()
    known = set(ids)
    report.strangers = [jid for jid in executions if jid not in known]
    running_per_kill: collections.Counter[int] = collections.Counter()
    for jid in ids:
        job = final.get(jid)
        execs = executions.get(jid, [])
        states[job.state.value if job is not None else "absent"] += 1
        terminal = job is not None and job.is_terminal()
        if not execs and not terminal:
            report.lost.append(jid)
        elif not terminal:
            report.unfinished.append(jid)
        if job is not None and job.state == JobState.SUCCEEDED and not execs:
            report.phantom.append(jid)
        if len({e.token for e in execs}) != len(execs):
            report.reused_tokens.append(jid)
        if len(execs) > 1:
            report.duplicates[jid] = execs
            for earlier, later in zip(execs, execs[1:]):
                kill = killed.get(earlier.pid)
                if (kill is None or earlier.at > kill.dead_at + _CLOCK_SLACK
                        or later.at < kill.called_at - _CLOCK_SLACK):
                    report.unexplained.append(jid)
                    break
                # An end line proves the code returned before the process died. Its
                # timestamp is no use here: under load the harness may be preempted
                # between reading the clock (called_at) and sending the signal, while
                # the worker's threads go on finishing (and starting) short jobs.
                if earlier.ended_at is not None:
                    report.dup_finished += 1
                else:
                    report.dup_running += 1
                    running_per_kill[kill.pid] += 1
    report.max_running_per_kill = max(running_per_kill.values(), default=0)
    report.states = dict(states)
    return report
