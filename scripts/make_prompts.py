"""Build the labelled prompt set in ``data/prompts/`` (see :mod:`vlab.prompts_gen`).

Usage: ``.venv/bin/python scripts/make_prompts.py [--out DIR]``.
"""

import sys

from vlab.prompts_gen import main

if __name__ == "__main__":
    sys.exit(main())
