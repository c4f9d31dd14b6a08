"""The public API of sedma.net is what __all__ says, and each name resolves."""

from __future__ import annotations

import sedma.net


def test_public_names_are_exactly_all_and_importable() -> None:
    public = {n for n in vars(sedma.net) if not n.startswith("_") and n[0].isupper()}
    assert public == set(sedma.net.__all__)
    for name in sedma.net.__all__:
        assert getattr(sedma.net, name) is not None
