"""Entry point of the ``radiounet`` command: one subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from . import (
    classify_cmd,
    dashboards_cmd,
    demo_cmd,
    evaluate_cmd,
    model_cmd,
    results_cmd,
    segment_cmd,
    serve_cmd,
    simulate_cmd,
    stack_cmd,
    status_cmd,
    submit_cmd,
    train_cmd,
)

__all__ = ["build_parser", "main"]

_COMMANDS = (
    segment_cmd,
    classify_cmd,
    simulate_cmd,
    train_cmd,
    evaluate_cmd,
    demo_cmd,
    model_cmd,
    stack_cmd,
    submit_cmd,
    status_cmd,
    results_cmd,
    serve_cmd,
    dashboards_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radiounet",
        description=(
            "Find diffuse radio emission (halos, relics, filaments) in radio images "
            "with Radio U-Net (Stuardi et al. 2024)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"radiounet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for bad input)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:2] == ["serve", "model-server"]:
        # Its flags are tensorflow_model_server's (--port=...), which argparse's REMAINDER
        # cannot pass through a subcommand: hand them over untouched.
        from ..stream.model_server.server import main as model_server_main

        return int(model_server_main(args_list[2:], prog="radiounet serve model-server") or 0)
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        # InvalidImageError is a ValueError: every bad input ends here as one line.
        print(f"radiounet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"radiounet {args.command}: interrupted", file=sys.stderr)
        return 130


def _stdout_closed() -> int:
    """The reader of stdout went away (``radiounet results | head -1``): stop quietly.

    As Python's documentation recommends (signal module, "Note on SIGPIPE"):
    point stdout at devnull so the final flush at exit cannot fail again.
    Status 141 (128 + SIGPIPE) is what the shell reports for any tool stopped
    this way (``yes | head``), so ``set -o pipefail`` scripts can tell it from
    our errors (1: a service unreachable, 2: bad input).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout with no file descriptor (e.g. captured)
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
