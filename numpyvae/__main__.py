"""``python -m numpyvae``: see numpyvae/cli/main.py."""

import sys

from .cli.main import main

sys.exit(main())
