"""``sedma infer``: the digits accuracy table, JSON contract and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sedma.cli import main


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infer-cli-home")


@pytest.fixture(autouse=True)
def _model_cache(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One trained model for the module: the cache under SEDMA_HOME is what later runs reuse.
    monkeypatch.setenv("SEDMA_HOME", str(shared_home))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_digital_raw_corrected_per_material(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["infer", "--material", "ideal", "--material", "EpiRAM", "--trials", "1", "--json"], capsys
    )
    assert code == 0
    doc = json.loads(out)
    assert set(doc["materials"]) == {"ideal", "EpiRAM"}
    for row in doc["materials"].values():
        assert {"digital", "raw", "corrected"} <= set(row)
        assert 0.9 < row["digital"] <= 1.0
    assert doc["materials"]["ideal"]["raw"] == doc["materials"]["ideal"]["digital"]
    assert doc["test_samples"] == 360 and doc["trials"] == 1


def test_table_is_printed_without_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["infer", "--material", "TaOx-HfOy", "--trials", "1", "--tile", "32"], capsys)
    assert code == 0
    assert "TaOx-HfOy" in out and "corrected" in out and "%" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--material", "unobtainium"], "unknown material 'unobtainium'"),
        (["--material", "ideal", "--trials", "0"], "trials must be >= 1"),
        (["--material", "EpiRAM", "--tile", "4096"], "above the maximum"),
        (["--material", "missing-device.yaml"], "cannot read device file"),
        (["--material", "ideal", "--trials", "1", "--plot", "/nonexistent-dir/x.png"], "cannot write plot"),
    ],
)
def test_bad_input_is_one_red_line_and_exit_1(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["infer", *args], capsys)
    assert code == 1 and out == ""
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_exits_non_zero_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sedma.cli", "infer", "--material", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "unknown material 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_material_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["infer"], capsys)
    assert code == 2 and "--material" in err


def test_negative_seed_is_one_line_not_a_numpy_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["infer", "--material", "ideal", "--trials", "1", "--seed", "-1"], capsys)
    assert (code, out) == (1, "")
    assert "--seed must be >= 0, got -1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("field", "text"), [("levels", ".nan"), ("levels", ".inf"), ("g_max", ".nan")])
def test_nan_or_inf_in_a_device_file_names_file_and_field(
    device_file_with: Callable[[str, str], Path], capsys: pytest.CaptureFixture[str], field: str, text: str
) -> None:
    dev = device_file_with(field, text)
    code, out, err = run(["infer", "--material", str(dev)], capsys)
    assert (code, out) == (1, "")
    assert f"device file {dev}: field '{field}' must be a finite number" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
