"""Argument checks shared by the objectives: each returns the normalised value or raises a
``ValueError`` that names the argument, its value and what is allowed."""
from __future__ import annotations

from numbers import Integral, Real

import numpy as np

DTYPES = ("float32", "float64")


def check_int(name: str, value, low: int) -> int:
    """``value`` as an int, or ``ValueError`` unless it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} = {value!r} must be an integer >= {low}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """``value`` unchanged, or ``ValueError`` unless it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} = {value!r} must be true or false")
    return value


def check_seed(seed) -> int:
    """A random seed: an integer >= 0."""
    return check_int("seed", seed, 0)


def check_real(name: str, value, low: float, high: float = np.inf, *,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, or ``ValueError`` unless it is a finite number in the interval."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} = {value!r} must be a finite number in {bounds}")
    return float(value)


def check_choice(name: str, value, allowed) -> str:
    """``value`` unchanged, or ``ValueError`` unless it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} = {value!r} is not allowed; choose one of "
                         f"{', '.join(allowed)}")
    return value


def check_widths(name: str, value) -> tuple[int, ...]:
    """Layer widths: an int or a sequence of ints >= 1, as a tuple."""
    widths = (value,) if isinstance(value, Integral) else value
    if (not isinstance(widths, (list, tuple))
            or any(isinstance(w, bool) or not isinstance(w, Integral) or w < 1
                   for w in widths)):
        raise ValueError(f"{name} = {value!r} must be a list of integers >= 1 (layer widths)")
    return tuple(int(w) for w in widths)


def check_dtype(dtype) -> np.dtype:
    """``dtype`` (a name, type or np.dtype) as a numpy dtype, float32 or float64."""
    try:
        # np.dtype(None) would silently mean float64
        resolved = None if dtype is None else np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise ValueError(f"dtype = {dtype!r} is not allowed; choose one of {', '.join(DTYPES)}")
    return resolved


def check_params(params, n_workers: int, dim: int, dtype: np.dtype) -> np.ndarray:
    """``params`` as an array of ``dtype``, shaped (dim,) (shared) or (n_workers, dim)."""
    params = np.asarray(params, dtype=dtype)
    if params.shape not in ((dim,), (n_workers, dim)):
        raise ValueError(f"params has shape {params.shape}; expected ({dim},) or "
                         f"({n_workers}, {dim})")
    return params


def check_eval_params(params, dim: int, dtype) -> np.ndarray:
    """``params`` as a (dim,) array of ``dtype``: ``evaluate`` takes one point."""
    params = np.asarray(params, dtype=dtype)
    if params.shape != (dim,):
        raise ValueError(f"params has shape {params.shape}; evaluate expects ({dim},)")
    return params
