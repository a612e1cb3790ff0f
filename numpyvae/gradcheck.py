"""``python -m numpyvae.gradcheck``: the gradient-check table.

The checker itself is numpyvae/nn/gradcheck.py.
"""

import sys

from .cli.gradcheck_report import run_report

if __name__ == "__main__":
    sys.exit(run_report())
