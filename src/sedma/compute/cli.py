"""``sedma matvec``: one matrix-vector product on simulated RRAM crossbars (a thin CLI layer)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
import numpy as np
import numpy.typing as npt
from click.core import ParameterSource

from sedma._output import emit_json, print_table
from sedma.compute.correction import MODES
from sedma.compute.crossbar import CrossbarConfig
from sedma.compute.engine import PARTITIONS, ComputeOptions, MatvecReport, open_memory, process
from sedma.compute.executor import EXECUTORS, check_reachable, ray_address
from sedma.errors import InputError

DEFAULT_SIZE = 1024


def load_npy(path: str, what: str) -> npt.NDArray[Any]:
    """A .npy array (never pickled objects); :class:`InputError` naming the file otherwise."""
    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except FileNotFoundError as exc:
        raise InputError(f"{what} file {p} does not exist") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{what} file {p} is not a readable .npy array: {exc}") from exc
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{what} file {p} holds an archive, not one array")
    return arr


def parse_lambda(text: str) -> float | str:
    """``adaptive`` or a number >= 0."""
    if text == "adaptive":
        return text
    try:
        value = float(text)
    except ValueError as exc:
        raise InputError(f"--lambda must be 'adaptive' or a number >= 0, got {text!r}") from exc
    if not math.isfinite(value) or value < 0:
        raise InputError(f"--lambda must be 'adaptive' or a number >= 0, got {text!r}")
    return value


def _check_counts(rows: int | None, cols: int | None, batch: int, seed: int) -> None:
    """Refuse sizes below 1 and a negative seed, naming the flag and the value."""
    for flag, value in (("--rows", rows), ("--cols", cols), ("--batch", batch)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be >= 1, got {value}")
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")


def _inputs(
    matrix: str | None, vector: str | None, rows: int | None, cols: int | None, seed: int, batch: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """A from --matrix or uniform [0, 1) of --rows × --cols; x from --vector or uniform [0, 1)."""
    rng = np.random.default_rng(seed)
    if matrix:
        a = load_npy(matrix, "matrix")
    else:
        m = DEFAULT_SIZE if rows is None else rows
        n = m if cols is None else cols
        a = rng.random((m, n))
    if vector:
        return a, load_npy(vector, "vector")
    if a.ndim != 2:
        raise InputError(f"matrix must be 2-D, got shape {a.shape}")
    x = rng.random((a.shape[1], batch))
    return a, x[:, 0] if batch == 1 else x


def _human(report: MatvecReport) -> None:
    err = report.relative_error
    rows = [
        ("relative error raw", err["raw"]),
        ("relative error first-order", err["first_order"]),
        ("relative error full", err["full"]),
        ("lambda", report.lam),
        ("lambda from", _lambda_origin(report.lambda_decision)),
        ("partition from", report.partition.get("origin", report.partition.get("strategy"))),
        ("MVM/s", report.mvm_per_s),
        ("program s", report.program_s),
        ("program iterations", report.program_iterations),
        ("tiles", report.tiles),
        ("cell utilization", report.cell_utilization),
        ("energy per MVM (J)", report.energy_j),
        ("latency per MVM (s)", report.latency_s),
        ("  of which analog read (s)", report.mvm_cost["read_latency_s"]),
        ("  of which x̃ re-programming (s)", report.mvm_cost["xtilde_program_s"]),
        ("program energy (J)", report.program_energy_j),
        ("program latency (s)", report.program_latency_s),
        ("workload", report.workload["key"]),
    ]
    print_table("sedma matvec", ["quantity", "value"], [(k, "-" if v is None else v) for k, v in rows])


def _lambda_origin(decision: dict[str, Any] | None) -> str:
    """Where λ_t came from (Eq. 6): fixed, recent statistics, long-term memory, or both."""
    if decision is None:
        return "fixed"
    source = str(decision.get("source", "fixed"))
    if decision.get("memory") is not None and source != "fixed":
        return f"{source} (LTM held {decision['memory']:.3g}, alpha {decision.get('alpha', 0):.2g})"
    return source


@click.command()
@click.option("--matrix", type=str, default=None, help="A as a .npy file (default: uniform [0, 1)).")
@click.option("--vector", type=str, default=None, help="x as a .npy file, shape (n,) or (n, B).")
@click.option("--rows", type=int, default=None, help="Rows of the random A (default 1024).")
@click.option("--cols", type=int, default=None, help="Columns of the random A (default = rows).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--material", default="TaOx-HfOy", show_default=True, help="Device preset.")
@click.option("--device-file", type=str, default=None, help="A user device model (YAML/JSON).")
@click.option(
    "--tile", type=int, default=512, show_default=True, help="Crossbar size (static), 2..device maximum."
)
@click.option("--partition", type=click.Choice(PARTITIONS), default="static", show_default=True)
@click.option("--correction", type=click.Choice(MODES), default="full", show_default=True)
@click.option("--lambda", "lam", default="adaptive", show_default=True, help="'adaptive' or a value.")
@click.option("--batch", type=int, default=1, show_default=True, help="Vectors per read (random x).")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None, help="Default: local, or ray.")
@click.option("--adc-bits", type=int, default=None, help="ADC bits (default: the device's; 0 = ideal).")
@click.option("--dac-bits", type=int, default=None, help="DAC bits (default: the device's; 0 = ideal).")
@click.option(
    "--pool", "pool_file", type=str, default=None, help="Heterogeneous device pool (YAML) for adaptive."
)
@click.option("--no-memory", is_flag=True, help="Ablation: no dual memory (no LTM/STM).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def matvec(
    matrix: str | None,
    vector: str | None,
    rows: int | None,
    cols: int | None,
    seed: int,
    material: str,
    device_file: str | None,
    tile: int,
    partition: str,
    correction: str,
    lam: str,
    batch: int,
    executor: str | None,
    adc_bits: int | None,
    dac_bits: int | None,
    pool_file: str | None,
    no_memory: bool,
    as_json: bool,
) -> None:
    """One matrix-vector product on simulated RRAM crossbars, with MELISO+ correction."""
    _check_counts(rows, cols, batch, seed)
    options = ComputeOptions(
        material=material,
        device_file=device_file,
        tile=tile,
        partition=partition,
        correction=correction,
        lam=parse_lambda(lam),
        use_memory=not no_memory,
        executor=executor,
        seed=seed,
        progress=not as_json,
        pool_file=pool_file,
        crossbar=CrossbarConfig(adc_bits=adc_bits, dac_bits=dac_bits),
    )
    dev = options.device()
    # Adaptive partitioning picks its own array sizes: check --tile there only when it was given.
    given = click.get_current_context().get_parameter_source("tile") is not ParameterSource.DEFAULT
    if partition == "static" or given:
        dev.check_tile(tile, "--tile")  # --tile must fit the device in either partition mode
    options.validate()
    address = ray_address()
    if address and options.executor_kind() == "ray":
        check_reachable(address)  # fail now, not after programming the tiles
    a, x = _inputs(matrix, vector, rows, cols, seed, batch)
    memory = open_memory(use_memory=not no_memory)
    try:
        report = process(a, x, memory=memory, options=options)
    finally:
        if memory is not None:
            memory.close()
    if as_json:
        emit_json(report.as_dict())
    else:
        _human(report)
