"""Kubernetes resource quantities (``4Gi``, ``500m``, ``1.5``, ``2e3``) as plain numbers."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Suffixes of apimachinery's resource.Quantity: binary SI, decimal SI, decimal exponent.
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def parse_quantity(text: str | int | float) -> float:
    """Parse a Kubernetes quantity into a float in base units; ValueError when malformed."""
    if isinstance(text, bool):
        raise ValueError(f"not a quantity: {text!r}")
    if isinstance(text, int | float):
        return float(text)
    match = _PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"malformed quantity {text!r}")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number)
        if exponent:
            value *= Decimal(10) ** int(exponent[1:])
        elif suffix in _BINARY:
            value *= _BINARY[suffix]
        else:
            value *= _DECIMAL[suffix or ""]
    except InvalidOperation as exc:
        raise ValueError(f"malformed quantity {text!r}") from exc
    return float(value)


def format_memory(num_bytes: float) -> str:
    """Render bytes as the shortest exact binary quantity (``4Gi``), else plain bytes."""
    value = round(num_bytes)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def format_cpu(cores: float) -> str:
    """Render cores as an integer or millicores (``2``, ``500m``), rounding up to 1m."""
    milli = int(-(-round(cores * 1e6) // 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
