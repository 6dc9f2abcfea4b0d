"""``python -m distgp``: the command line."""

import sys

from distgp.cli import main

sys.exit(main())
