"""``python -m vlab.emulator``: the same as ``vlab emulator``."""

import sys

from vlab.cli import main

sys.exit(main(["emulator", *sys.argv[1:]]))
