from __future__ import annotations

import pytest

from sedma.deploy.quantity import format_cpu, format_memory, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4Gi", 4 * 2**30),
        ("128Mi", 128 * 2**20),
        ("1.5Gi", 1.5 * 2**30),
        ("500m", 0.5),
        ("2", 2.0),
        ("1e3", 1000.0),
        ("2k", 2000.0),
        ("3G", 3e9),
        (".5", 0.5),
        (7, 7.0),
    ],
)
def test_parse_quantity_accepts_kubernetes_forms(text: str | int, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["4Gx", "Gi", "", "1.2.3", "4 Gi", "--1", "1Ki2"])
def test_parse_quantity_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


def test_format_round_trips() -> None:
    assert format_memory(4 * 2**30) == "4Gi"
    assert format_memory(1536 * 2**20) == "1536Mi"
    assert format_memory(1000) == "1000"
    assert format_cpu(2.0) == "2"
    assert format_cpu(0.25) == "250m"
    for text in ("4Gi", "1536Mi", "250m", "3"):
        assert format_memory(parse_quantity(text)) == text or format_cpu(parse_quantity(text)) == text
