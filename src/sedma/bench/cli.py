"""``sedma bench``: one sub-command per layer, each imported lazily."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of the click command, and its help line.
_BENCHES: dict[str, tuple[str, str]] = {
    "memory": ("sedma.bench.memory:memory", "LTM get/put and STM throughput, with and without cache."),
    "compute": ("sedma.bench.compute:compute", "Crossbar MVM/s and error beside numpy float32."),
    "net": ("sedma.bench.net:net", "Transfer, RTT and DHT look-ups beside a raw socket floor."),
    "deploy": ("sedma.bench.deploy:deploy", "Placement solvers beside k8s-native and greedy."),
}


class _LazyBench(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_BENCHES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _BENCHES.get(cmd_name)
        if spec is None:
            return None
        module_name, attr = spec[0].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Benchmarks"):
            formatter.write_dl([(n, _BENCHES[n][1]) for n in self.list_commands(ctx)])


@click.group(cls=_LazyBench)
def bench() -> None:
    """Benchmarks that print ratios against floors measured in the same run."""
