#!/usr/bin/env python3
"""Fetch MNIST / Fashion-MNIST into ./data (or --dir, or $NUMPYVAE_DATA), verified by MD5.

    python data_fetch.py [mnist|fashion-mnist|all] [--dir DIR] [--mirror DIR]

Run with --help for details. The code lives in numpyvae/data/fetch.py.
"""

import sys

from numpyvae.data.fetch import main

if __name__ == "__main__":
    sys.exit(main(prog="data_fetch.py"))
