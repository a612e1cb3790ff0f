"""What the training tests share: a silent log, the CLI run in-process, and a swallowed signal."""

import os

from numpyvae.cli.main import main as cli_main


def quiet(_msg: str) -> None:
    """A log that prints nothing."""


def run_cli(args: list[str]) -> int:
    """Run the CLI in-process; argparse's own errors exit, ours return 2."""
    try:
        return cli_main(args)
    except SystemExit as e:
        return int(e.code)


def swallowed_signal(signum: int) -> None:
    """Send ``signum`` to this process and drop its KeyboardInterrupt, as numba's ctypes
    callbacks do to one that arrives while the kernels compile."""
    try:
        os.kill(os.getpid(), signum)
        for _ in range(10**5):  # the handler runs between bytecodes
            pass
    except KeyboardInterrupt:
        pass
