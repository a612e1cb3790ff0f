"""What the training tests share: a silent log and the CLI run in-process."""

from numpyvae.cli.main import main as cli_main


def quiet(_msg: str) -> None:
    """A log that prints nothing."""


def run_cli(args: list[str]) -> int:
    """Run the CLI in-process; argparse's own errors exit, ours return 2."""
    try:
        return cli_main(args)
    except SystemExit as e:
        return int(e.code)
