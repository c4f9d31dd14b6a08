"""Device presets (NeuroSim V3.0 Table II) and user device files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sedma.compute.devices import PRESETS, REQUIRED, Device, get_device, known_devices, load_device
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
