"""A heterogeneous pool of crossbar devices: array size, count, speed and host memory (Eq. 4's D).

Each :class:`PoolDevice` is a group of identical square arrays (``count`` arrays of
``array_size × array_size`` cells) of one material. Timing fields feed the partition cost model
of :mod:`sedma.compute.partition`: ``pulse_s`` is the write-pulse width, ``read_s`` the time of
one array activation (DAC → column currents → ADC), ``iterations`` the expected write-and-verify
iterations per row, ``speed`` a relative clock factor (2.0 = twice as fast), ``memory_mb`` the
host memory available for the device's tiles, partial sums and metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import yaml

from sedma.compute.devices import parse_number
from sedma.errors import InputError

# One array activation of a 64…1024 crossbar macro is ~0.1–1 µs in published designs
# (DAC settle, column integration, shared ADC conversion); 1 µs is the conservative end.
DEFAULT_READ_S = 1e-6
# MELISO+'s write-and-verify loop runs up to 21 iterations; ~10 is typical before convergence.
DEFAULT_ITERATIONS = 10.0
DEFAULT_SIZES = (64, 128, 256, 512)
# Numeric fields of a pool device: whole arrays, and timing/memory figures that must be > 0.
_POOL_INTEGERS = ("array_size", "count")
_POOL_FLOATS = ("speed", "memory_mb", "pulse_s", "read_s", "iterations")
_D = TypeVar("_D")


@dataclass(frozen=True, slots=True)
class PoolDevice:
    """``count`` square crossbars of ``array_size`` cells of one material, with timing and memory."""

    name: str
    array_size: int
    count: int
    material: str = "ideal"
    speed: float = 1.0
    memory_mb: float = 4096.0
    pulse_s: float = 50e-9
    read_s: float = DEFAULT_READ_S
    iterations: float = DEFAULT_ITERATIONS

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first field that cannot be used."""
        if not self.name:
            raise InputError("pool device has an empty name")
        if self.array_size < 2:
            raise InputError(f"pool device {self.name!r}: array_size must be >= 2, got {self.array_size}")
        if self.count < 1:
            raise InputError(f"pool device {self.name!r}: count must be >= 1, got {self.count}")
        for field in _POOL_FLOATS:
            value = getattr(self, field)
            if not math.isfinite(value) or value <= 0:
                raise InputError(f"pool device {self.name!r}: {field} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class DevicePool:
    """The devices a matrix may be partitioned over (Eq. 4): heterogeneous in size, count, speed."""

    devices: tuple[PoolDevice, ...]

    def validate(self) -> None:
        if not self.devices:
            raise InputError("device pool is empty")
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise InputError(f"device pool has duplicate names: {sorted(names)}")
        for d in self.devices:
            d.validate()

    def __len__(self) -> int:
        return len(self.devices)

    def index(self, name: str) -> int:
        for i, d in enumerate(self.devices):
            if d.name == name:
                return i
        raise InputError(f"device {name!r} is not in the pool {[d.name for d in self.devices]}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted({d.array_size for d in self.devices}))

    @property
    def total_arrays(self) -> int:
        return sum(d.count for d in self.devices)

    @property
    def total_memory_mb(self) -> float:
        return sum(d.memory_mb for d in self.devices)

    def column(self, field: str) -> npt.NDArray[np.float64]:
        """One field of every device as an array, for vectorised cost evaluation."""
        return np.array([float(getattr(d, field)) for d in self.devices])


def homogeneous_pool(material: str, *, tile: int, count: int = 1 << 20, pulse_s: float = 50e-9) -> DevicePool:
    """One device of ``tile``-sized arrays: the pool behind MELISO+'s static partitioning."""
    pool = DevicePool((PoolDevice(f"{material}-{tile}", tile, count, material, pulse_s=pulse_s),))
    pool.validate()
    return pool


def sized_pool(
    material: str,
    *,
    sizes: Iterable[int] = DEFAULT_SIZES,
    count: int = 1 << 20,
    pulse_s: float = 50e-9,
    memory_mb: float = 4096.0,
) -> DevicePool:
    """One device per array size, all of ``material``: the default pool of adaptive partitioning."""
    devs = tuple(
        PoolDevice(f"{material}-{s}", int(s), count, material, memory_mb=memory_mb, pulse_s=pulse_s)
        for s in sorted(set(sizes))
    )
    pool = DevicePool(devs)
    pool.validate()
    return pool


def _device_from_mapping(raw: Mapping[str, Any], where: str) -> PoolDevice:
    known = {f.name for f in fields(PoolDevice)}
    unknown = set(raw) - known
    if unknown:
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    for required in ("name", "array_size", "count"):
        if required not in raw or raw[required] is None:
            raise InputError(f"{where}: missing field {required!r}")
    values: dict[str, Any] = {"name": str(raw["name"])}
    for k, v in raw.items():
        if k == "material":
            values[k] = str(v)
        elif k != "name":
            values[k] = parse_number(where, k, v, integer=k in _POOL_INTEGERS)
    dev = PoolDevice(**values)
    try:
        dev.validate()
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from exc
    return dev


def load_pool(path: str | Path) -> DevicePool:
    """Read a pool from YAML/JSON: ``devices: [{name, array_size, count, ...}, ...]``."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise InputError(f"cannot read device pool file {p}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{p}: not valid YAML/JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("devices"), list):
        raise InputError(f"{p}: expected a mapping with a 'devices' list")
    devices = []
    for i, raw in enumerate(doc["devices"]):
        if not isinstance(raw, dict):
            raise InputError(f"{p}: devices[{i}] is not a mapping")
        devices.append(_device_from_mapping(raw, f"{p}: devices[{i}]"))
    pool = DevicePool(tuple(devices))
    pool.validate()
    return pool


class _DeviceLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def max_tile(self) -> int: ...
    @property
    def pulse_width_s(self) -> float: ...


def device_pool(
    device: _DeviceLike,
    *,
    sizes: Iterable[int] = DEFAULT_SIZES,
    count: int = 1 << 20,
    memory_mb: float = 4096.0,
) -> DevicePool:
    """One pool entry per array size of a material's device model, sizes capped at its max_tile."""
    allowed = sorted({int(s) for s in sizes if 2 <= int(s) <= int(device.max_tile)})
    if not allowed:
        raise InputError(
            f"no array size in {sorted(sizes)} fits device {device.name!r} (max_tile {device.max_tile})"
        )
    devs = tuple(
        PoolDevice(
            f"{device.name}-{s}",
            s,
            count,
            device.name,
            memory_mb=memory_mb,
            pulse_s=float(device.pulse_width_s),
        )
        for s in allowed
    )
    pool = DevicePool(devs)
    pool.validate()
    return pool


def device_models(pool: DevicePool, resolve: Callable[[str], _D]) -> dict[str, _D]:
    """Plan device name → device model of its material, as the crossbar engine's ``device`` map."""
    return {d.name: resolve(d.material) for d in pool.devices}
