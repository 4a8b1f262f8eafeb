"""Run ``python -m nuvom_cli ARGS...`` with umask 0 (S5): the permissions of
what Nuvom creates must not depend on the caller's umask."""

from __future__ import annotations

import os
import runpy
import sys

if __name__ == "__main__":
    os.umask(0)
    sys.argv = ["nuvom", *sys.argv[1:]]
    runpy.run_module("nuvom_cli", run_name="__main__", alter_sys=True)
