"""``python -m numpyvae.data [mnist|fashion-mnist|all] [--dir DIR] [--mirror DIR]``: fetch data."""

import sys

from .fetch import main

sys.exit(main(prog="python -m numpyvae.data"))
