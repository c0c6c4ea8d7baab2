"""Quantities as people read them."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """A byte count in binary units (1024): `512 B`, `579.2 KiB`, `1,234.5 GiB`."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"
