"""A module whose import kills the process (a child that cannot start)."""

import os

os._exit(5)
