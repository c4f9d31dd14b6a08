"""RRAM device models: conductance range, levels, nonlinearity, variation, pulses (REFERENCES.md).

The four materials carry the published NeuroSim V3.0 device parameters (Table II of the NeuroSim
V3.0 manual, as used by MELISO/MELISO+): Gmin–Gmax, levels, nonlinearity LTP/LTD, σ
cycle-to-cycle and the write pulse. The table lists neither device-to-device spread nor read
noise; our defaults (σ_d2d = 2 % of the range, read noise = 1 % of each cell's conductance per
read) are chosen to match the 1 % per-cell read noise CrossSim was measured with, and documented
in the package README. ``levels = 0`` marks a continuous device programmed exactly (``ideal``);
otherwise ``levels`` (the pulses from Gmin to Gmax) is 2..``MAX_LEVELS``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from sedma.errors import InputError

# Fields a device file may set to a negative value: LTD nonlinearity and the LTD pulse polarity.
_SIGNED = frozenset({"nl_ltp", "nl_ltd", "pulse_v_ltd"})
# Fields that must be > 0: a zero pulse width, read time or read/write voltage moves or senses nothing.
_POSITIVE = frozenset({"pulse_v", "pulse_width_s", "read_v", "read_time_s"})
# The most pulse levels a device may have. The write-and-verify model (writeverify.PulseCurve) keeps
# pulse counts, clipped to the level count, in float32, exact as integers only up to 2**24; 2**20
# leaves headroom for the controller's arithmetic and is far above any published RRAM device
# (tens to a few thousand distinguishable levels). More cannot be modelled faithfully.
MAX_LEVELS = 1 << 20
# Integer fields beyond this are not exact as floats (and far beyond any usable value).
_MAX_EXACT = float(1 << 53)
# Fields a device file must give; the rest default as in :class:`Device`.
REQUIRED = (
    "g_min",
    "g_max",
    "levels",
    "nl_ltp",
    "nl_ltd",
    "sigma_c2c",
    "sigma_d2d",
    "read_noise",
    "pulse_v",
    "pulse_width_s",
)


@dataclass(frozen=True, slots=True)
class Device:
    """One RRAM material: conductances in siemens, variations as fractions of (Gmax − Gmin)."""

    name: str
    g_min: float
    g_max: float
    levels: int
    nl_ltp: float
    nl_ltd: float
    sigma_c2c: float
    sigma_d2d: float = 0.02
    read_noise: float = 0.01
    pulse_v: float = 1.0
    pulse_v_ltd: float = -1.0
    pulse_width_s: float = 100e-9
    read_v: float = 0.5
    read_time_s: float = 5e-9
    max_tile: int = 1024
    dac_bits: int = 8
    adc_bits: int = 8
    source: str = "user device file"

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first field that cannot be used."""
        for f in fields(self):
            value = getattr(self, f.name)
            # Python ints are always finite (and may be too large for float()); check floats only.
            if isinstance(value, float) and not math.isfinite(value):
                raise InputError(f"device {self.name!r}: {f.name} is not finite ({value})")
            if f.name not in _SIGNED and isinstance(value, float | int) and value < 0:
                raise InputError(f"device {self.name!r}: {f.name} must be >= 0, got {value}")
            if f.name in _POSITIVE and value <= 0:
                raise InputError(f"device {self.name!r}: {f.name} must be > 0, got {value}")
        if not self.name:
            raise InputError("device name is empty")
        if self.g_max <= self.g_min:
            raise InputError(f"device {self.name!r}: g_max {self.g_max} must exceed g_min {self.g_min}")
        # levels = 0 is a continuous device (programmed exactly); 1 level cannot store a value.
        if self.levels != 0 and not 2 <= self.levels <= MAX_LEVELS:
            raise InputError(
                f"device {self.name!r}: levels must be 0 (continuous) or 2..{MAX_LEVELS}, got {self.levels}"
            )
        if self.pulse_v_ltd == 0:
            raise InputError(f"device {self.name!r}: pulse_v_ltd must be non-zero, got {self.pulse_v_ltd}")
        if self.max_tile < 2:
            raise InputError(f"device {self.name!r}: max_tile {self.max_tile} is below 2")
        if self.dac_bits > 24 or self.adc_bits > 24:
            raise InputError(f"device {self.name!r}: converter bits above 24 are not supported")

    def check_tile(self, tile: int, what: str = "tile size") -> None:
        """InputError unless a ``tile`` × ``tile`` crossbar fits this device (2..max_tile);
        ``what`` names the value as the caller knows it (``--tile`` on the command line)."""
        if tile < 2:
            raise InputError(
                f"{what} {tile} is below 2 (device {self.name!r} takes arrays of 2..{self.max_tile})"
            )
        if tile > self.max_tile:
            raise InputError(f"{what} {tile} is above the maximum {self.max_tile} of device {self.name!r}")

    @property
    def span(self) -> float:
        """Gmax − Gmin, the unit of every σ."""
        return self.g_max - self.g_min

    @property
    def continuous(self) -> bool:
        """True for a device programmed exactly (no pulse quantisation): ``levels == 0``."""
        return self.levels == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_NEUROSIM = "NeuroSim V3.0 manual, Table II (as used by MELISO/MELISO+)"

PRESETS: dict[str, Device] = {
    # Ag:a-Si (Jo et al., Nano Lett. 2010): 3.08e-9–3.85e-8 S, 97 levels, NL 2.4/−4.88, σ 3.5 %,
    # +3.2 V / −2.8 V, 300 µs pulses.
    "Ag-aSi": Device(
        "Ag-aSi", 3.08e-9, 3.85e-8, 97, 2.4, -4.88, 0.035,
        pulse_v=3.2, pulse_v_ltd=-2.8, pulse_width_s=300e-6, source=_NEUROSIM,
    ),
    # AlOx/HfO2 (Woo et al., EDL 2016): 1.34e-5–5.92e-5 S, 40 levels, NL 1.94/−0.61, σ 5 %,
    # +0.9 V / −1 V, 100 µs pulses.
    "AlOx-HfO2": Device(
        "AlOx-HfO2", 1.34e-5, 5.92e-5, 40, 1.94, -0.61, 0.05,
        pulse_v=0.9, pulse_v_ltd=-1.0, pulse_width_s=100e-6, source=_NEUROSIM,
    ),
    # EpiRAM (Choi et al., Nat. Mater. 2018): 2.46e-7–1.23e-5 S, 64 levels, NL 0.5/−0.5, σ 2 %,
    # +5 V / −3 V, 5 µs pulses.
    "EpiRAM": Device(
        "EpiRAM", 2.46e-7, 1.23e-5, 64, 0.5, -0.5, 0.02,
        pulse_v=5.0, pulse_v_ltd=-3.0, pulse_width_s=5e-6, source=_NEUROSIM,
    ),
    # TaOx/HfOy (Wu et al., VLSI 2018): 1e-6–1e-5 S, 128 levels, NL 0.04/−0.63, σ 3.7 %,
    # ±1.6 V, 50 ns pulses.
    "TaOx-HfOy": Device(
        "TaOx-HfOy", 1e-6, 1e-5, 128, 0.04, -0.63, 0.037,
        pulse_v=1.6, pulse_v_ltd=-1.6, pulse_width_s=50e-9, source=_NEUROSIM,
    ),
    # No variation, exact conductances, no converters: results equal A @ x to float32 precision.
    "ideal": Device(
        "ideal", 1e-6, 1e-5, 0, 0.0, 0.0, 0.0, sigma_d2d=0.0, read_noise=0.0,
        max_tile=1 << 16, dac_bits=0, adc_bits=0, source="idealised reference device",
    ),
}  # fmt: skip


def known_devices() -> list[str]:
    return sorted(PRESETS)


def get_device(name: str) -> Device:
    """The preset device called ``name``; :class:`InputError` lists the known ones."""
    dev = PRESETS.get(name)
    if dev is None:
        raise InputError(f"unknown material {name!r}; known: {', '.join(known_devices())}")
    return dev


def _read_mapping(p: Path) -> dict[str, Any]:
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError(f"cannot read device file {p}: {exc.strerror}") from exc
    try:
        doc = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"device file {p}: not valid {p.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(f"device file {p}: expected a mapping of device fields")
    return doc


def load_device(path: str | Path) -> Device:
    """A user device from YAML/JSON; missing, negative or unknown fields name file and field."""
    p = Path(path)
    doc = _read_mapping(p)
    known = {f.name: f for f in fields(Device)}
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise InputError(f"device file {p}: unknown field(s) {unknown}")
    for name in REQUIRED:
        if name not in doc or doc[name] is None:
            raise InputError(f"device file {p}: missing field {name!r}")
    values: dict[str, Any] = {"name": str(doc.get("name") or p.stem)}
    for name, value in doc.items():
        if name in ("name", "source"):
            continue
        values[name] = parse_number(f"device file {p}", name, value, integer=known[name].type in ("int", int))
        if name not in _SIGNED and values[name] < 0:
            raise InputError(f"device file {p}: field {name!r} must be >= 0, got {value}")
    dev = Device(**values, source=str(doc.get("source", f"device file {p}")))
    try:
        dev.validate()
    except InputError as exc:
        raise InputError(f"device file {p}: {exc}") from exc
    return dev


def parse_number(where: str, name: str, value: Any, *, integer: bool) -> float | int:
    """``value`` as a finite number (an integer where ``integer``); InputError naming where and field.

    ``where`` says which file (and entry) the field came from, as device and pool files say it.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"{where}: field {name!r} must be a number, got {value!r}")
    try:
        num = float(value)
    except ValueError as exc:
        raise InputError(f"{where}: field {name!r} must be a number, got {value!r}") from exc
    except OverflowError as exc:  # an integer beyond float range
        raise InputError(f"{where}: field {name!r} is out of range, got {value!r}") from exc
    if not math.isfinite(num):
        raise InputError(f"{where}: field {name!r} must be a finite number, got {value!r}")
    if integer:
        if not num.is_integer():
            raise InputError(f"{where}: field {name!r} must be an integer, got {value!r}")
        if abs(num) > _MAX_EXACT:  # no longer exact as a float, and far beyond any real device
            raise InputError(f"{where}: field {name!r} is out of range, got {value!r}")
        return int(num)
    return num


def with_overrides(dev: Device, **changes: Any) -> Device:
    """A validated copy of ``dev`` with some fields changed (ablations, sweeps)."""
    new = replace(dev, **changes)
    new.validate()
    return new
