"""Checking one value of a spec against its key's ``Field``: its type, its unit, its range or
choices, and the closest valid key for a misspelt one."""
from __future__ import annotations

import difflib
import math

from experiments.keys import Field, SpecError, bounds, describe_range
from sim import units

def suggest(key, valid) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} Allowed: {', '.join(valid)}"


def shown(key) -> str:
    """A key as the user wrote it, quoted when it holds anything but a plain name."""
    text = str(key)
    return text if text.replace("_", "").replace("-", "").isalnum() else repr(text)


def type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def check_value(where: str, field: Field, value):
    """Return ``value`` converted to base units, or raise SpecError naming ``where``."""
    if value is None:
        return None
    if field.per_worker and isinstance(value, (list, tuple)):
        if not value:
            raise SpecError(f"{where} = []: a per-worker list needs one value per worker")
        return [check_value(f"{where}[{i}]", Field(**{**field.__dict__, "per_worker": False}), v)
                for i, v in enumerate(value)]
    kind = field.kind
    if kind in ("bandwidth", "time", "size"):
        try:
            out = units.parse(value, kind)
        except ValueError as err:
            raise SpecError(f"{where} = {value!r}: {err}") from None
    elif kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{where} = {value!r}: expected true or false, got {type_name(value)}")
        return value
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where} = {value!r}: expected an integer, got {type_name(value)}")
        if field.choices and value not in field.choices:
            raise SpecError(f"{where} = {value!r} is not allowed; allowed: "
                            f"{', '.join(map(str, field.choices))}")
        out = value
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where} = {value!r}: expected a number, got {type_name(value)}")
        out = float(value)
    elif kind in ("str", "choice"):
        if not isinstance(value, str):
            raise SpecError(f"{where} = {value!r}: expected a string, got {type_name(value)}")
        if kind == "choice" and value not in field.choices:
            raise SpecError(f"{where} = {value!r} is not allowed{suggest(value, field.choices)}")
        return value
    elif kind == "portion":
        return _count_or_fraction(where, value, zero_allowed=False)
    elif kind == "workers":
        if isinstance(value, (list, tuple)):
            return check_value(where, Field("ids"), value)
        return _count_or_fraction(where, value, zero_allowed=True)
    elif kind == "ids":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            raise SpecError(f"{where} = {value!r}: expected a list of worker ids (integers "
                            ">= 0), e.g. [0, 3]")
        if len(set(value)) != len(value):
            raise SpecError(f"{where} = {value!r}: a worker is listed twice")
        return sorted(value)
    elif kind == "pair":
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise SpecError(f"{where} = {value!r}: expected a pair of numbers like [0.9, 0.99]")
        item = Field("float", min=field.min, max=field.max, min_open=field.min_open,
                     max_open=field.max_open)
        return [check_value(f"{where}[{i}]", item, v) for i, v in enumerate(value)]
    else:
        raise AssertionError(kind)
    if isinstance(out, float) and not math.isfinite(out):
        raise SpecError(f"{where} = {value!r}: expected a finite number")
    low, low_open, high, high_open = bounds(field)
    low_bad = low is not None and (out <= low if low_open else out < low)
    high_bad = high is not None and (out >= high if high_open else out > high)
    if low_bad or high_bad:
        raise SpecError(f"{where} = {value!r} is out of range; allowed: {describe_range(field)}")
    return out


def _count_or_fraction(where: str, value, zero_allowed: bool):
    """A number of workers given as a count (int) or a fraction of them (float): counts from 1
    and fractions in (0, 1], or, when ``zero_allowed`` (nobody is a valid answer, and a list of
    ids is the alternative), counts from 0 and fractions in [0, 1)."""
    if zero_allowed:
        allowed = "a count >= 0, a fraction in [0, 1) or a list of worker ids"
    else:
        allowed = "a count >= 1 or a fraction in (0, 1]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where} = {value!r}: expected {allowed}, got {type_name(value)}")
    if isinstance(value, int):
        if value < (0 if zero_allowed else 1):
            raise SpecError(f"{where} = {value!r} is out of range; allowed: {allowed}")
        return value
    if not (0 <= value < 1 if zero_allowed else 0 < value <= 1):
        raise SpecError(f"{where} = {value!r} is out of range; allowed: {allowed}")
    return float(value)


def check_section(section: str, table, fields: dict[str, Field], skip=()) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"[{section}] must be a table of keys, got {type_name(table)}")
    for key, value in table.items():
        if key not in fields and key not in skip:
            raise SpecError(f"[{section}] {shown(key)}: unknown key{suggest(key, list(fields))}")
        if value is None and key in fields and fields[key].default is not None:
            raise SpecError(f"{section}.{key} = None: give a value (default "
                            f"{fields[key].default!r}) or leave the key out")
    return {key: check_value(f"{section}.{key}", field, table.get(key, field.default))
            for key, field in fields.items()}
