"""Device presets (NeuroSim V3.0 Table II) and user device files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sedma.compute.devices import (
    MAX_LEVELS,
    PRESETS,
    REQUIRED,
    Device,
    get_device,
    known_devices,
    load_device,
    with_overrides,
)
from sedma.errors import InputError


def test_presets_carry_the_published_table_and_validate() -> None:
    taox = get_device("TaOx-HfOy")
    assert (taox.g_min, taox.g_max, taox.levels) == (1e-6, 1e-5, 128)
    assert (taox.nl_ltp, taox.nl_ltd, taox.sigma_c2c) == (0.04, -0.63, 0.037)
    assert get_device("Ag-aSi").levels == 97 and get_device("AlOx-HfO2").sigma_c2c == 0.05
    assert get_device("EpiRAM").pulse_width_s == 5e-6
    for dev in PRESETS.values():
        dev.validate()
    assert get_device("ideal").continuous and get_device("ideal").read_noise == 0.0


def test_unknown_material_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"unknown material 'Cu'.*TaOx-HfOy"):
        get_device("Cu")
    assert known_devices() == sorted(PRESETS)


def _fields(**over: object) -> dict[str, object]:
    base = {k: getattr(get_device("EpiRAM"), k) for k in REQUIRED}
    base.update(over)
    return base


def test_load_device_from_yaml_and_json(tmp_path: Path) -> None:
    y = tmp_path / "mine.yaml"
    y.write_text("name: mine\n" + "".join(f"{k}: {v}\n" for k, v in _fields(levels=32).items()))
    dev = load_device(y)
    assert isinstance(dev, Device) and dev.name == "mine" and dev.levels == 32 and dev.nl_ltd == -0.5
    j = tmp_path / "other.json"
    j.write_text(json.dumps(_fields(read_noise=0.002, max_tile=256)))
    dev = load_device(j)
    assert dev.name == "other" and dev.read_noise == 0.002 and dev.max_tile == 256


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({k: v for k, v in _fields().items() if k != "g_max"}, "missing field 'g_max'"),
        (_fields(sigma_c2c=-0.1), "field 'sigma_c2c' must be >= 0"),
        (_fields(levels=2.5), "field 'levels' must be an integer"),
        (_fields(g_min="abc"), "field 'g_min' must be a number"),
        (_fields(colour="red"), r"unknown field\(s\) \['colour'\]"),
        (_fields(g_min=1e-3), "g_max .* must exceed g_min"),
    ],
)
def test_bad_device_file_names_file_and_field(tmp_path: Path, doc: dict[str, object], match: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=match) as err:
        load_device(p)
    assert str(p) in str(err.value)


def test_unreadable_or_malformed_device_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read device file"):
        load_device(tmp_path / "absent.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_device(p)


def test_shipped_example_device_file_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "src/sedma/compute/presets/example-device.yaml"
    dev = load_device(path)
    assert dev.name == "my-taox" and dev.levels == 128


def _yaml_with(tmp_path: Path, field: str, text: str) -> Path:
    """The EpiRAM fields as a YAML device file, ``field`` set to the literal YAML ``text``."""
    lines = [f"{k}: {v}" for k, v in _fields().items() if k != field] + [f"{field}: {text}"]
    p = tmp_path / "dev.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("field", ["levels", "max_tile", "adc_bits", "g_min", "sigma_c2c", "nl_ltd"])
@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_nan_or_inf_in_any_numeric_field_names_file_and_field(tmp_path: Path, field: str, text: str) -> None:
    p = _yaml_with(tmp_path, field, text)
    with pytest.raises(InputError, match=f"field '{field}' must be a finite number") as err:
        load_device(p)
    assert str(p) in str(err.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1", "levels must be 0 .continuous. or 2..1048576, got 1$"),
        ("1048577", "levels must be 0 .continuous. or 2..1048576, got 1048577"),
        ("1.0e+30", "field 'levels' is out of range, got 1e\\+30"),
        ("1" + "0" * 400, "field 'levels' is out of range"),
    ],
)
def test_levels_that_cannot_work_are_refused(tmp_path: Path, text: str, match: str) -> None:
    p = _yaml_with(tmp_path, "levels", text)
    with pytest.raises(InputError, match=match) as err:
        load_device(p)
    assert str(p) in str(err.value)


@pytest.mark.parametrize("levels", [0, 2, MAX_LEVELS])
def test_continuous_and_in_range_levels_load(tmp_path: Path, levels: int) -> None:
    assert load_device(_yaml_with(tmp_path, "levels", str(levels))).levels == levels


@pytest.mark.parametrize("field", ["pulse_width_s", "read_time_s", "pulse_v", "read_v", "pulse_v_ltd"])
def test_zero_pulse_width_read_time_or_voltage_is_refused(tmp_path: Path, field: str) -> None:
    p = _yaml_with(tmp_path, field, "0")
    with pytest.raises(InputError, match=f"{field} must be (> 0|non-zero), got 0") as err:
        load_device(p)
    assert str(p) in str(err.value)


def test_overrides_are_held_to_the_same_rules() -> None:
    with pytest.raises(InputError, match="levels must be 0"):
        with_overrides(get_device("EpiRAM"), levels=1)
    with pytest.raises(InputError, match="max_tile is not finite"):
        with_overrides(get_device("EpiRAM"), max_tile=float("nan"))
    with pytest.raises(InputError, match="pulse_width_s must be > 0"):
        with_overrides(get_device("EpiRAM"), pulse_width_s=0.0)
