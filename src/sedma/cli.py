"""The ``sedma`` command: a thin layer that parses options and calls library functions.

Command groups are imported lazily so ``sedma --help`` stays fast and a layer's heavy
imports (numpy, Ray, the Kubernetes client) load only when one of its commands runs.
Every :class:`~sedma.errors.SedmaError` becomes one readable line and exit status 1.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from sedma import __version__
from sedma.errors import SedmaError

# name -> "module:attribute" of a click command or group, and its one-line help.
_COMMANDS: dict[str, tuple[str, str]] = {
    "memory": ("sedma.memory.cli:memory", "Inspect, export and import the dual memory."),
    "matvec": ("sedma.compute.cli:matvec", "One matrix-vector product on simulated RRAM crossbars."),
    "infer": ("sedma.compute.infer_cli:infer", "Digits MLP accuracy: digital vs analog raw vs corrected."),
    "node": ("sedma.net.cli:node", "Run a peer of the tensor network."),
    "put": ("sedma.net.cli:put", "Publish a .npy tensor to the network; prints its CID."),
    "get": ("sedma.net.cli:get", "Fetch a tensor by CID into a .npy file."),
    "peers": ("sedma.net.cli:peers", "List the peers a node knows, with their scores."),
    "swarm": ("sedma.net.cli:swarm", "Start N local peers for trying the network out."),
    "deploy": ("sedma.deploy.cli:deploy", "Plan, compile, apply and watch agent placements."),
    "bench": ("sedma.bench.cli:bench", "Benchmarks that print ratios against in-run floors."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attr = spec[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("sedma"):
                return _unavailable(cmd_name, spec[1])
            raise
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table so listing commands imports nothing heavy.
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def _cmd(args: tuple[str, ...]) -> None:
        raise SedmaError(f"'sedma {name}' is not available in this build")

    _cmd.sedma_unavailable = True  # type: ignore[attr-defined]
    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sedma")
def cli() -> None:
    """SEDMA: RRAM crossbar compute, a P2P tensor network and Kubernetes placement
    sharing one dual memory that learns from its own history."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the console script: typed errors become one line, exit 1."""
    try:
        return cli.main(args=argv, prog_name="sedma", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SedmaError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
