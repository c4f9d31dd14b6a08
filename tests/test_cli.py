"""The top-level command: version, help listing every group, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

import sedma
from sedma.cli import _COMMANDS, cli, main
from sedma.errors import SedmaError


def test_version_matches_package() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert sedma.__version__ in result.output


def test_help_lists_every_command_group() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ("memory", "matvec", "infer", "node", "put", "get", "peers", "swarm", "deploy", "bench"):
        assert name in result.output


def test_every_listed_command_imports() -> None:
    # A command in --help that fails to import would surface as a traceback for users.
    ctx = click.Context(cli)
    for name in _COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert not getattr(command, "sedma_unavailable", False), f"sedma {name} is not implemented"


def test_sedma_error_becomes_one_line_and_exit_1(capsys: object) -> None:
    @click.command()
    def boom() -> None:
        raise SedmaError("the file x.npy has shape (3,), expected 2-D")

    cli.add_command(boom, "boom-test")
    try:
        try:
            main(["boom-test"])
        except SystemExit as exc:
            assert exc.code == 1
        else:  # pragma: no cover
            raise AssertionError("main() did not exit")
    finally:
        cli.commands.pop("boom-test", None)


def test_unknown_command_exits_nonzero_without_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sedma.cli", "no-such-command"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "no-such-command" in proc.stderr
