"""Parse quantities with SI suffixes: bandwidth (bit/s), time (s) and size (bytes); and whole
counts of fractions (``count_of``).

A bare number means bit/s for bandwidth, seconds for time and bytes for sizes. Suffixes are
case-sensitive where case carries meaning (``Mb`` is megabit, ``MB`` megabyte).
"""
from __future__ import annotations

import math
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


def count_of(fraction: float, n: int, round_up: bool = False) -> int:
    """``fraction`` of ``n`` things as a whole count: rounded down, or up with ``round_up``. A
    product within 1e-9 of a whole number counts as that number (0.29 * 100 is
    28.999999999999996 in floating point, and 0.28 * 25 is 7.000000000000001)."""
    exact = fraction * n
    return math.ceil(exact - 1e-9) if round_up else math.floor(exact + 1e-9)


def format_bandwidth(bits_per_s: float) -> str:
    """Short human form of a bandwidth, e.g. ``1e9 -> '1 Gb/s'``."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bits_per_s >= scale:
            return f"{bits_per_s / scale:g} {prefix}b/s"
    return f"{bits_per_s:g} b/s"


def format_time(seconds: float) -> str:
    """Short human form of a duration, e.g. ``5e-05 -> '50 µs'``, ``90 -> '90 s'``."""
    if seconds == 0:
        return "0 s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_size(n_bytes: float) -> str:
    """Short human form of a size in bytes, binary prefixes, e.g. ``4194304 -> '4 MiB'``."""
    for prefix, scale in (("Ti", 2.0**40), ("Gi", 2.0**30), ("Mi", 2.0**20), ("Ki", 2.0**10)):
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:.3g} {prefix}B"
    return f"{n_bytes:g} B"


def format_count(n: float) -> str:
    """Short human form of a count, e.g. ``25_557_032 -> '25.6M'``, ``124e6 -> '124M'``."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:g}"


def format_quantity(value, kind: str) -> str:
    """``value`` in a human form for its kind ('bandwidth', 'time', 'size'); others as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if kind == "bandwidth":
            return format_bandwidth(value)
        if kind == "time":
            return format_time(value)
        if kind == "size":
            return format_size(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_quantity(v, kind) for v in value) + "]"
    return repr(value) if isinstance(value, str) else f"{value}"
