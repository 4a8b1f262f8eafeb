"""Nuvom against Huey, same machine, same invocation (run by hand, not by CI).

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/run.py                 # everything, median of 3
    .venv/bin/python bench/run.py --reps 1 --measures drain_noop,latency200
    .venv/bin/python bench/run.py --markdown      # the table for bench/README.md

Every trial runs in a fresh process (bench/trials.py) and the systems are
interleaved within each repetition, so a busy moment hurts all of them alike.
Each nuvom figure is printed next to the matching Huey figure and their ratio
(nuvom / Huey): sqlite and sqlite-full vs SqliteHuey, file vs FileHuey, memory
vs MemoryHuey; the 10 ms jobs also against ``plain-threads`` (no queue: the
ideal on this machine).  Nuvom loads the plugins ``pip install nuvom`` brings
(``--all-plugins``: every installed one; see bench/trials.py).  ``nuvom-sqlite-v4idx`` is nuvom's SQLite backend with the
listing indexes of schema version 4 (before the dashboard's state and task
indexes): its row compares nuvom-sqlite with it, so the indexes' cost on
enqueue, claim and finish is a ratio of one invocation:

    .venv/bin/python bench/run.py --systems nuvom-sqlite,nuvom-sqlite-v4idx \
        --measures enqueue_one,enqueue_batch,drain_noop --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PAIRS = [
    ("nuvom-sqlite", "huey-sqlite"),
    ("nuvom-sqlite-full", "huey-sqlite"),
    ("nuvom-file", "huey-file"),
    ("nuvom-file-nosync", "huey-file"),  # equal durability: neither fsyncs
    ("nuvom-memory", "huey-memory"),
    ("nuvom-sqlite", "nuvom-sqlite-v4idx"),  # what the listing indexes of schema version 5 cost
    # drain_nap only: no queue at all, what this machine's time.sleep(0.01) allows now
    ("nuvom-sqlite", "plain-threads"),
    ("nuvom-sqlite-full", "plain-threads"),
    ("nuvom-file", "plain-threads"),
    ("nuvom-memory", "plain-threads"),
]
IN_PROCESS = ["nuvom-memory", "huey-memory", "nuvom-file", "huey-file", "nuvom-sqlite", "nuvom-sqlite-full", "huey-sqlite"]
CROSS_PROCESS = ["nuvom-file", "huey-file", "nuvom-sqlite", "nuvom-sqlite-full", "huey-sqlite"]
#: measure -> (systems, [(result key, label, unit, higher is better)])
MEASURES: dict[str, tuple[list[str], list[tuple[str, str, str, bool]]]] = {
    "enqueue_one": ([*IN_PROCESS, "nuvom-sqlite-v4idx", "nuvom-file-nosync"], [("value", "enqueue one at a time", "jobs/s", True)]),
    "enqueue_batch": ([*IN_PROCESS, "nuvom-sqlite-v4idx", "nuvom-file-nosync"], [("value", "enqueue 10k in a batch (map)", "s", False)]),
    "drain_noop": ([*IN_PROCESS, "nuvom-sqlite-v4idx"], [("value", "drain 10k no-op, 4 threads", "jobs/s", True),
                                                        ("cpu_us_per_job", "CPU per job (10k no-op drain)", "us", False)]),
    "drain_noop_1k": (["nuvom-file", "huey-file"], [("value", "drain 1k no-op, 4 threads", "jobs/s", True)]),
    "drain_nap": ([*IN_PROCESS, "plain-threads"], [("value", "drain 1k x sleep 10 ms, 4 threads", "jobs/s", True)]),
    "latency200": (CROSS_PROCESS, [("p50_ms", "latency p50 @200/s", "ms", False), ("p99_ms", "latency p99 @200/s", "ms", False),
                                   ("rss_mb", "worker peak RSS (after 1k jobs)", "MB", False)]),
    "latency5": (CROSS_PROCESS, [("p50_ms", "latency p50 @5/s", "ms", False), ("p99_ms", "latency p99 @5/s", "ms", False)]),
    "idle": (CROSS_PROCESS, [("value", "idle worker CPU (10 s)", "% core", False)]),
    "startup": (["nuvom-sqlite", "huey-sqlite"], [("value", "worker start-up to ready", "s", False)]),
    "help": (["nuvom-sqlite", "huey-sqlite"], [("value", "CLI --help", "s", False)]),
}


def trial(system: str, measure: str) -> dict[str, Any] | None:
    proc = subprocess.run([sys.executable, str(BENCH / "trials.py"), system, measure],
                          capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  ! {system} {measure} failed: {(proc.stderr or proc.stdout).strip()[-300:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def compile_sources() -> None:
    """Byte-compile Nuvom's own sources first, as installing a wheel does: an
    editable checkout run with ``PYTHONDONTWRITEBYTECODE=1`` would otherwise
    compile every module in every trial, which Huey (installed, compiled) never
    pays."""
    import compileall
    import re

    root = BENCH.parent
    for src in [root / "nuvom_kernel", root / "nuvom_support", root / "nuvom", *root.glob("plugins/*/src")]:
        if src.is_dir():  # not the plugin template: what it renders must carry no byte code
            compileall.compile_dir(str(src), quiet=1, rx=re.compile(r"plugin_template"))


def versions() -> dict[str, str]:
    import sqlite3
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "huey": version("huey"), "nuvom": version("nuvom"),
            "machine": f"{platform.system()} {platform.machine()}, {__import__('os').cpu_count()} CPUs"}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if unit == "% core":
        return f"{value:.2f}"
    if unit == "s":
        return f"{value:.3f}"
    return f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--measures", default=",".join(MEASURES))
    parser.add_argument("--systems", default=None, help="comma-separated subset, e.g. nuvom-sqlite,huey-sqlite")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=Path, default=None, help="also write every raw trial here")
    parser.add_argument("--all-plugins", action="store_true",
                        help="nuvom loads every installed plugin, not only those `pip install nuvom` brings")
    args = parser.parse_args()
    if args.all_plugins:
        os.environ["BENCH_ALL_PLUGINS"] = "1"
    wanted = set(args.systems.split(",")) if args.systems else None
    measures = [m for m in args.measures.split(",") if m]
    raw: dict[tuple[str, str], list[dict[str, Any]]] = {}
    started = time.time()
    compile_sources()
    for rep in range(args.reps):
        for measure in measures:
            systems = [s for s in MEASURES[measure][0] if wanted is None or s in wanted]
            shift = rep % max(1, len(systems))
            for system in systems[shift:] + systems[:shift]:  # rotate the order each repetition
                print(f"rep {rep + 1}/{args.reps} {measure:<14} {system}", file=sys.stderr, flush=True)
                result = trial(system, measure)
                if result is not None:
                    raw.setdefault((system, measure), []).append(result)

    def median(system: str, measure: str, key: str) -> float | None:
        values = [r[key] for r in raw.get((system, measure), []) if r.get(key) is not None]
        return statistics.median(values) if values else None

    rows: list[list[str]] = []
    for measure in measures:
        for key, label, unit, higher in MEASURES[measure][1]:
            for ours, theirs in PAIRS:
                if ours not in MEASURES[measure][0] or theirs not in MEASURES[measure][0] \
                        or (wanted is not None and not {ours, theirs} <= wanted):
                    continue
                a, b = median(ours, measure, key), median(theirs, measure, key)
                ratio = f"{a / b:.2f}x" if a is not None and b else "-"
                rows.append([label, f"{ours} vs {theirs}", f"{fmt(a, unit)} {unit}", f"{fmt(b, unit)} {unit}", ratio,
                             "higher" if higher else "lower"])
    header = ["figure", "a vs b", "a", "b", "ratio a/b", "better"]
    info = versions()
    pragmas = next((r["pragmas"] for (s, _), rs in raw.items() for r in rs if s == "huey-sqlite" and "pragmas" in r), None)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; {info['machine']}; Python {info['python']}; "
          f"SQLite {info['sqlite']}; huey {info['huey']}; nuvom {info['nuvom']}; median of {args.reps}; "
          f"SqliteHuey pragmas {pragmas}; nuvom plugins: {'every installed one' if args.all_plugins else 'pip install nuvom'}; "
          f"load average {' '.join(f'{x:.1f}' for x in getattr(os, 'getloadavg', lambda: ())())}; took {time.time() - started:.0f} s")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    if args.json is not None:
        args.json.write_text(json.dumps({f"{s} {m}": v for (s, m), v in raw.items()}, indent=1))


if __name__ == "__main__":
    main()
