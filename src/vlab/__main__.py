"""``python -m vlab``: the ``vlab`` command line."""

import sys

from vlab.cli import main

sys.exit(main())
