"""``sedma matvec``: the JSON contract and one readable line (exit 1) for every bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sedma.cli import main

SMALL = ["--rows", "96", "--cols", "80", "--tile", "32"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(["matvec", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_report_has_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([*SMALL, "--material", "EpiRAM", "--batch", "3", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    for key in ("lambda", "mvm_per_s", "program_s", "program_iterations", "tiles", "cell_utilization",
                "energy_j", "latency_s"):  # fmt: skip
        assert key in doc
    assert set(doc["relative_error"]) >= {"raw", "first_order", "full"}
    assert doc["relative_error"]["full"] < doc["relative_error"]["raw"]
    assert doc["tiles"] == 9 and doc["options"]["material"] == "EpiRAM"


def test_matrix_and_vector_files_and_fixed_lambda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    a, x = rng.random((40, 30)), rng.random(30)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "x.npy", x)
    args = ["--matrix", str(tmp_path / "a.npy"), "--vector", str(tmp_path / "x.npy")]
    code, out, _ = _run([*args, "--material", "ideal", "--tile", "16", "--lambda", "1e-12", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["options"]["crossbar"]["adc_bits"] is None
    code, out, _ = _run([*args, "--material", "EpiRAM", "--tile", "16", "--adc-bits", "4", "--json"], capsys)
    coarse = json.loads(out)
    assert coarse["options"]["crossbar"]["adc_bits"] == 4 and coarse["relative_error"]["raw"] > 1e-3
    code, out, _ = _run([*args, "--material", "ideal", "--tile", "16", "--lambda", "1e-12", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["lambda"] == 1e-12 and doc["relative_error"]["full"] < 1e-5


def _bad_files(tmp: Path) -> dict[str, Path]:
    files = {
        "nan": np.array([[1.0, np.nan], [0.0, 1.0]]),
        "flat": np.arange(4.0),
        "empty": np.zeros((0, 2)),
        "text": np.array([["a", "b"]]),
        "x3": np.ones(3),
        "good": np.ones((2, 2)),
    }
    out = {}
    for name, arr in files.items():
        out[name] = tmp / f"{name}.npy"
        np.save(out[name], arr)
    (tmp / "dev.yaml").write_text("g_min: 1e-6\ng_max: -1\n")
    out["dev"] = tmp / "dev.yaml"
    return out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--matrix", "{nan}"], "NaN or Inf"),
        (["--matrix", "{flat}"], "2-D"),
        (["--matrix", "{empty}"], "empty"),
        (["--matrix", "{text}"], "not a real numeric type"),
        (["--matrix", "{good}", "--vector", "{x3}"], "does not match"),
        (["--matrix", "{absent}"], "does not exist"),
        (["--material", "Unobtainium"], "unknown material"),
        (["--tile", "1"], "below 2"),
        (["--tile", "4096"], "above the maximum"),
        (["--device-file", "{dev}"], "missing field"),
        (["--lambda", "soon"], "--lambda must be"),
        (["--adc-bits", "40"], "adc_bits must be in 0..24"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    files = {k: str(v) for k, v in _bad_files(tmp_path).items()} | {"absent": str(tmp_path / "no.npy")}
    code, _out, err = _run([a.format(**files) for a in args] + ["--rows", "8"], capsys)
    assert code == 1 and match in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_console_process_exits_1_without_traceback(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([[np.inf]]))
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "sedma.cli", "matvec", "--matrix", str(tmp_path / "a.npy")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "NaN or Inf" in proc.stderr and "Traceback" not in proc.stderr


def test_adaptive_partition_uses_more_of_the_provisioned_cells_than_static(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shape = ["--rows", "1000", "--cols", "777", "--material", "TaOx-HfOy", "--correction", "none"]
    utilization = {}
    # Static first: its grid must not become the pattern the adaptive run starts from.
    for partition in ("static", "adaptive"):
        code, out, _ = _run([*shape, "--partition", partition, "--json"], capsys)
        assert code == 0
        doc = json.loads(out)
        assert doc["partition"]["strategy"] == partition
        utilization[partition] = doc["cell_utilization"]
    assert utilization["static"] == pytest.approx(1000 * 777 / (4 * 512 * 512))
    assert utilization["adaptive"] > utilization["static"] + 0.1


def test_matvec_table_says_the_second_run_starts_from_long_term_memory() -> None:
    from click.testing import CliRunner

    from sedma.compute.cli import matvec

    args = ["--rows", "96", "--cols", "80", "--partition", "adaptive", "--tile", "64"]
    runner = CliRunner()
    first = runner.invoke(matvec, args)
    second = runner.invoke(matvec, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "LTM held" not in first.output
    assert "LTM held" in second.output
    assert "│ ltm" in second.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0"], "--rows must be >= 1, got 0"),
        (["--rows", "16", "--cols", "0"], "--cols must be >= 1, got 0"),
        (["--cols", "-4"], "--cols must be >= 1, got -4"),
        (["--rows", "-16"], "--rows must be >= 1, got -16"),
        (["--rows", "16", "--batch", "0"], "--batch must be >= 1, got 0"),
        (["--rows", "16", "--seed", "-1"], "--seed must be >= 0, got -1"),
    ],
)
def test_zero_or_negative_sizes_and_seed_are_refused_not_defaulted(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _run([*args, "--tile", "8", "--no-memory", "--json"], capsys)
    assert (code, out) == (1, "")
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("tile", "message"),
    [
        ("99999", "--tile 99999 is above the maximum 1024 of device 'TaOx-HfOy'"),
        ("1", "--tile 1 is below 2 (device 'TaOx-HfOy' takes arrays of 2..1024)"),
    ],
)
def test_adaptive_partition_refuses_a_tile_the_device_cannot_hold(
    capsys: pytest.CaptureFixture[str], tile: str, message: str
) -> None:
    code, out, err = _run(["--rows", "16", "--partition", "adaptive", "--tile", tile, "--json"], capsys)
    assert (code, out) == (1, "")
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("field", "text"), [("levels", ".nan"), ("levels", ".inf"), ("max_tile", ".inf")])
def test_nan_or_inf_in_a_device_file_is_one_line_naming_file_and_field(
    device_file_with: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str], field: str, text: str
) -> None:
    dev = device_file_with(field, text)
    code, out, err = _run(["--rows", "16", "--tile", "8", "--device-file", str(dev)], capsys)
    assert (code, out) == (1, "")
    assert f"device file {dev}: field '{field}' must be a finite number" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_inf_array_size_in_a_pool_file_is_one_line_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = tmp_path / "pool.yaml"
    pool.write_text("devices:\n  - {name: a, material: ideal, array_size: .inf, count: 2}\n")
    args = ["--rows", "16", "--tile", "8", "--partition", "adaptive", "--pool", str(pool), "--json"]
    code, out, err = _run(args, capsys)
    assert (code, out) == (1, "")
    assert f"{pool}: devices[0]: field 'array_size' must be a finite number, got inf" in err
    assert len(err.strip().splitlines()) == 1


def test_unreachable_ray_address_exits_quickly_naming_it(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    env = os.environ | {
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "SEDMA_RAY_ADDRESS": address,
        "SEDMA_HOME": str(tmp_path / "home"),
    }
    args = ["matvec", "--rows", "64", "--tile", "32", "--no-memory", "--json"]
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sedma.cli", *args], capture_output=True, text=True, env=env, timeout=90
    )
    assert time.monotonic() - start < 60
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"cannot reach Ray at {address}" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
