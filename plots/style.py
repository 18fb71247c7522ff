"""One look for every figure: a colour-blind-safe palette with a fixed colour per method."""
from __future__ import annotations

# Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
             "#000000")

#: A fixed colour per method variant, so a method looks the same in every figure.
METHOD_COLORS = {
    "dlion/mavo": "#0072B2",
    "dlion/avg": "#56B4E9",
    "glion": "#009E73",
    "gadamw": "#D55E00",
    "gsgd": "#CC79A7",
    "lion": "#000000",
}


def method_key(spec: dict) -> str:
    """'dlion/mavo', 'dlion/avg' or the method name."""
    method = spec["method"]
    return f"{method['name']}/{method['aggregate']}" if "aggregate" in method else method["name"]


def color_for(spec: dict) -> str:
    """The method's colour (methods without a fixed one get a stable palette colour)."""
    key = method_key(spec)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return OKABE_ITO[sum(map(ord, key)) % len(OKABE_ITO)]


_PRETTY = {"dlion/mavo": "D-Lion (MaVo)", "dlion/avg": "D-Lion (Avg)", "glion": "G-Lion",
           "gadamw": "G-AdamW", "gsgd": "G-SGD", "lion": "Lion"}


def run_label(spec: dict, all_specs: list[dict]) -> str:
    """Legend label: the method, plus the other keys that differ between the plotted runs."""
    label = _PRETTY.get(method_key(spec), method_key(spec))
    extras = []
    for section in ("cluster", "network", "compute", "run", "objective"):
        for key, value in spec[section].items():
            if key == "seed":
                continue
            values = {repr(s[section].get(key)) for s in all_specs}
            if len(values) > 1:
                extras.append(f"{key}={value}")
    return label + (f" ({', '.join(extras)})" if extras else "")
