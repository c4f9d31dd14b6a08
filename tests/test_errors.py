"""Config validation shared by the layers names the class and field it refuses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sedma.errors import ConfigError, require_positive


@dataclass
class _Timeouts:
    connect: float = 1.0
    idle: float = 2.0


def test_require_positive_accepts_positive_fields() -> None:
    require_positive(_Timeouts(), ("connect", "idle"))


@pytest.mark.parametrize("bad", [0, -1.5, float("nan")])
def test_require_positive_names_class_field_and_value(bad: float) -> None:
    with pytest.raises(ConfigError, match=rf"^_Timeouts\.idle must be > 0, got {bad}$"):
        require_positive(_Timeouts(idle=bad), ("connect", "idle"))
