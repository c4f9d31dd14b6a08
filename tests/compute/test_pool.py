"""Device pool files (``--pool``): every bad numeric field is an InputError naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sedma.compute.pool import load_pool
from sedma.errors import InputError

GOOD = {"name": "a", "material": "TaOx-HfOy", "array_size": "64", "count": "2"}


def _pool_file(tmp_path: Path, **over: str) -> Path:
    entry = ", ".join(f"{k}: {v}" for k, v in (GOOD | over).items())
    p = tmp_path / "pool.yaml"
    p.write_text(f"devices:\n  - {{{entry}}}\n")
    return p


@pytest.mark.parametrize(
    ("field", "text", "match"),
    [
        ("array_size", ".inf", "field 'array_size' must be a finite number, got inf"),
        ("array_size", "-.inf", "field 'array_size' must be a finite number, got -inf"),
        ("array_size", ".nan", "field 'array_size' must be a finite number, got nan"),
        ("count", ".inf", "field 'count' must be a finite number, got inf"),
        ("array_size", "2.5", "field 'array_size' must be an integer, got 2.5"),
        ("count", "1.0e+300", "field 'count' is out of range"),
        ("array_size", "true", "field 'array_size' must be a number, got True"),
        ("array_size", "0", "array_size must be >= 2, got 0"),
        ("array_size", "-64", "array_size must be >= 2, got -64"),
        ("count", "0", "count must be >= 1, got 0"),
        ("count", "-3", "count must be >= 1, got -3"),
        ("speed", ".nan", "field 'speed' must be a finite number, got nan"),
        ("memory_mb", ".inf", "field 'memory_mb' must be a finite number, got inf"),
        ("pulse_s", "0", "pulse_s must be positive, got 0.0"),
        ("read_s", "-1e-6", "read_s must be positive"),
        ("iterations", "0", "iterations must be positive"),
        ("count", "null", "missing field 'count'"),
    ],
)
def test_bad_numeric_pool_field_is_an_input_error_naming_file_and_field(
    tmp_path: Path, field: str, text: str, match: str
) -> None:
    p = _pool_file(tmp_path, **{field: text})
    with pytest.raises(InputError, match=match) as err:
        load_pool(p)
    assert f"{p}: devices[0]" in str(err.value)


def test_well_formed_pool_file_loads_integers_and_floats(tmp_path: Path) -> None:
    pool = load_pool(_pool_file(tmp_path, array_size="128.0", speed="2", pulse_s="1e-7"))
    dev = pool.devices[0]
    assert dev.array_size == 128 and isinstance(dev.array_size, int)
    assert dev.count == 2 and dev.speed == 2.0 and dev.pulse_s == 1e-7
