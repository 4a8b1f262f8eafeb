"""``python -m nuvom_cli`` is the same as ``nuvom``."""

from nuvom_cli.app import main

main()
