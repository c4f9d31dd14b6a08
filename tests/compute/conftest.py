"""Fixtures shared by the compute tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLE_DEVICE = Path(__file__).resolve().parents[2] / "src/sedma/compute/presets/example-device.yaml"


@pytest.fixture
def device_file_with(tmp_path: Path) -> Callable[[str, str], Path]:
    """Writes the example device file with ``field`` set to the YAML ``text``; returns its path."""

    def write(field: str, text: str) -> Path:
        lines = [ln for ln in EXAMPLE_DEVICE.read_text().splitlines() if not ln.startswith(f"{field}:")]
        dev = tmp_path / "d.yaml"
        dev.write_text("\n".join([*lines, f"{field}: {text}"]) + "\n")
        return dev

    return write
