"""Run ``radiounet submit/status/results`` in-process, isolated from the caller's setup."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from radiounet.cli import main as cli_main
from radiounet.cli import results_cmd, status_cmd, submit_cmd

RunCli = Callable[[list[str]], tuple[int, str, str]]
ErrorCheck = Callable[[str, str, str], str]


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> RunCli:
    """``radiounet ARGV`` through the real ``main``: exit status, stdout, stderr.

    The caller's ``RADIOUNET_*`` variables and any ``out/stack`` state in the
    working directory must not steer the command, so both are removed.
    """
    for name in list(os.environ):
        if name.startswith("RADIOUNET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # Until the commands are wired into main's _COMMANDS, add them for these tests.
    extra = tuple(m for m in (submit_cmd, status_cmd, results_cmd) if m not in cli_main._COMMANDS)
    monkeypatch.setattr(cli_main, "_COMMANDS", (*cli_main._COMMANDS, *extra))

    def run(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = cli_main.main(argv)
        except SystemExit as exc:  # argparse usage errors and --help
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _one_line_error(err: str, command: str, message: str) -> str:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("radiounet")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"radiounet {command}: error: ")
    assert message in errors[0], errors[0]
    assert err.rstrip("\n").splitlines()[-1] == errors[0]
    return errors[0]


@pytest.fixture
def one_line_error() -> ErrorCheck:
    """Check that stderr ends with one ``radiounet CMD: error: ...`` line holding a message."""
    return _one_line_error
