"""Parse quantities with SI suffixes: bandwidth (bit/s), time (s) and size (bytes).

A bare number means bit/s for bandwidth, seconds for time and bytes for sizes. Suffixes are
case-sensitive where case carries meaning (``Mb`` is megabit, ``MB`` megabyte).
"""
from __future__ import annotations

import re

_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-zµ/]*)\s*$")

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}

BANDWIDTH_UNITS = {f"{p}bps": m for p, m in _SI.items()}
BANDWIDTH_UNITS.update({f"{p}B/s": 8 * m for p, m in _SI.items()})
BANDWIDTH_UNITS.update({f"{p}B/s": 8 * m for p, m in _BINARY.items()})
BANDWIDTH_UNITS.update({f"{p}b/s": m for p, m in _SI.items()})
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0}
SIZE_UNITS = {f"{p}B": m for p, m in _SI.items()}
SIZE_UNITS.update({f"{p}B": m for p, m in _BINARY.items()})
SIZE_UNITS.update({f"{p}b": m / 8 for p, m in _SI.items()})

for _table in (BANDWIDTH_UNITS, TIME_UNITS, SIZE_UNITS):
    _table[""] = 1.0  # a number written as a string, e.g. "5e9", is in base units

KINDS = {
    "bandwidth": (BANDWIDTH_UNITS, "bit/s", "'10Gbps', '100Mbps', '1.25GB/s'"),
    "time": (TIME_UNITS, "s", "'50us', '30ms', '1.5s'"),
    "size": (SIZE_UNITS, "bytes", "'4MiB', '1GB', '512B'"),
}


def parse(value, kind: str) -> float:
    """Return ``value`` (a number or a string like ``'10Gbps'``) in base units of ``kind``.

    Base units: bit/s for ``bandwidth``, seconds for ``time``, bytes for ``size``.
    Raises ``ValueError`` with the allowed forms when the string cannot be read.
    """
    table, base, examples = KINDS[kind]
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind} such as {examples}, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _NUMBER.match(value.replace("_", ""))
        if match and match.group(2) in table:
            return float(match.group(1)) * table[match.group(2)]
    raise ValueError(f"expected a {kind} such as {examples} (a bare number is {base}), "
                     f"got {value!r}")


def format_bandwidth(bits_per_s: float) -> str:
    """Short human form of a bandwidth, e.g. ``1e9 -> '1 Gb/s'``."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bits_per_s >= scale:
            return f"{bits_per_s / scale:g} {prefix}b/s"
    return f"{bits_per_s:g} b/s"
