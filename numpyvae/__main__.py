"""``python -m numpyvae``: see numpyvae/cli.py."""

import sys

from .cli import main

sys.exit(main())
