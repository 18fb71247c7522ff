"""The transport against real Linux TCP: the tables and the figure of docs/validation.md.

Reads the measurements in tests/data/calibration/, runs every case through
``experiments.simulate`` with only the links set (as a user would) under the ``tcp`` and
``fluid`` transports, computes SimGrid's LV08 prediction from its published factors, prints the
tables as Markdown and draws docs/figures/validation.png.
Run: .venv/bin/python docs/validation.py [-o FIGURE]   (or: make validation)
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import simpy  # noqa: E402

import experiments  # noqa: E402
from sim.net.network import Network  # noqa: E402

DATA = ROOT / "tests" / "data" / "calibration"
PHASES = ("up", "down")
# SimGrid's LV08 network model (its default): latency x 13.01, bandwidth x 0.97
LV08_LATENCY, LV08_BANDWIDTH = 13.01, 0.97
MODELS = {"fluid": ("#D55E00", "o"), "tcp": ("#0072B2", "s"), "LV08": ("#009E73", "^")}


def measured_cases(path=DATA / "linux_tcp_cubic.csv") -> dict[str, dict]:
    """case id -> its links, sizes and the median makespan (s) of each phase over repetitions."""
    rows = list(csv.DictReader(open(path)))
    by_case = defaultdict(list)
    for row in rows:
        by_case[row["case_id"]].append(row)
    cases = {}
    for case, rows in by_case.items():
        first = rows[0]
        medians = {}
        for phase in PHASES:
            spans = []
            for rep in sorted({r["rep"] for r in rows}):
                flows = [r for r in rows if r["rep"] == rep and r["phase"] == phase]
                start = 0.0 if phase == "up" else float(flows[0]["start_s"])
                spans.append(max(float(f["end_s"]) for f in flows) - start)
            medians[phase] = statistics.median(spans)
        cases[case] = dict(workers=int(first["N"]), worker_mbit=float(first["worker_rate_mbit"]),
                           server_mbit=float(first["server_rate_mbit"]),
                           delay_ms=float(first["delay_ms"]), bytes=int(first["bytes_up"]),
                           measured=medians)
        assert first["bytes_up"] == first["bytes_down"]
    return cases


def simulated(case: dict, transport: str | None = None) -> dict[str, float]:
    """Makespan (s) of each phase of one parameter-server step carrying the case's bytes: fp32
    G-AdamW messages on a model of bytes / 4 parameters, every cost but the network's zero."""
    network = {"bandwidth": f"{case['worker_mbit']}Mbps",
               "server_bandwidth": f"{case['server_mbit']}Mbps",
               "latency": f"{case['delay_ms']}ms", "collective": "ps"}
    if transport is not None:
        network["transport"] = transport
    result = experiments.simulate(objective={"name": "logistic", "features": 15},
                                  method="gadamw", workers=case["workers"], steps=1,
                                  network=network, cluster={"model_params": case["bytes"] // 4},
                                  progress=False)
    h = result.history
    up = float(h["comm_up_s"][0] + h["idle_s"][0])  # the server holds every byte
    return {"up": up, "down": float(h["time_s"][0]) - up}


def lv08(case: dict) -> dict[str, float]:
    """SimGrid LV08 for one phase: 13.01 x latency + bytes / (0.97 x the flow's max-min share)."""
    share = min(case["worker_mbit"], case["server_mbit"] / case["workers"]) * 1e6
    t = LV08_LATENCY * case["delay_ms"] * 1e-3 + 8 * case["bytes"] / (LV08_BANDWIDTH * share)
    return {"up": t, "down": t}


def idle_cases(path=DATA / "linux_tcp_idle_cubic.csv") -> list[dict]:
    """(bytes, gap) -> medians (s) of the first transfer and of the later ones, over repetitions."""
    groups = defaultdict(lambda: ([], []))
    for row in csv.DictReader(open(path)):
        first, later = groups[(int(row["bytes"]), float(row["gap_s"]))]
        (first if row["msg"] == "0" else later).append(float(row["duration_s"]))
    return [dict(bytes=b, gap=g, first=statistics.median(f), later=statistics.median(l))
            for (b, g), (f, l) in sorted(groups.items())]


def idle_simulated(nbytes: int, gap: float, messages: int = 8) -> list[float]:
    """Durations (s) of repeated sends on one connection (100 Mb/s, 5 ms one way): the server
    answers one byte, the worker waits ``gap`` seconds after the answer and sends again."""
    env = simpy.Environment()
    net = Network(env, 1, bandwidth=1e8, latency=5e-3)
    durations = []

    def worker():
        for _ in range(messages):
            start = env.now
            durations.append((yield net.transfer(0, net.server, 8 * nbytes)) - start)
            yield net.transfer(net.server, 0, 8)
            yield env.timeout(gap)

    env.process(worker())
    env.run()
    return durations


def _error(model: float, measured: float) -> str:
    return f"{model / measured - 1:+.1%}"


def tables(cases: dict, results: dict) -> str:
    lines = ["| case | N | Mb/s worker / server | D (ms) | bytes | phase | measured (s) "
             "| tcp | fluid | LV08 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, case in cases.items():
        for phase in PHASES:
            m = case["measured"][phase]
            cells = [f"{results[k][name][phase]:.4f} ({_error(results[k][name][phase], m)})"
                     for k in ("tcp", "fluid", "LV08")]
            lines.append(f"| {name} | {case['workers']} | {case['worker_mbit']:g} / "
                         f"{case['server_mbit']:g} | {case['delay_ms']:g} | {case['bytes']:,} | "
                         f"{phase} | {m:.4f} | " + " | ".join(cells) + " |")
    worst = {k: max(abs(results[k][n][p] / c["measured"][p] - 1) for n, c in cases.items()
                    for p in PHASES) for k in MODELS}
    lines.append("")
    lines.append("Largest error: " + ", ".join(f"{k} {v:.1%}" for k, v in worst.items()) + ".")
    lines.append("")
    lines.append("| bytes | gap (s) | measured later (ms) | tcp (ms) | measured first (ms) "
                 "| tcp first (ms) |")
    lines.append("|---|---|---|---|---|---|")
    for case in idle_cases():
        durations = idle_simulated(case["bytes"], case["gap"])
        later = statistics.median(durations[1:])
        lines.append(f"| {case['bytes']:,} | {case['gap']:g} | {case['later'] * 1e3:.2f} | "
                     f"{later * 1e3:.2f} ({_error(later, case['later'])}) | "
                     f"{case['first'] * 1e3:.2f} | {durations[0] * 1e3:.2f} "
                     f"({_error(durations[0], case['first'])}) |")
    return "\n".join(lines)


def figure(cases: dict, results: dict, out: Path) -> None:
    fig, (scatter, ratio) = plt.subplots(1, 2, figsize=(11, 4.6),
                                         gridspec_kw={"width_ratios": [1, 1.25]})
    points = [(name, phase) for name in cases for phase in PHASES]
    measured = [cases[n]["measured"][p] for n, p in points]
    for model, (color, marker) in MODELS.items():
        modelled = [results[model][n][p] for n, p in points]
        scatter.scatter(measured, modelled, color=color, marker=marker, s=36, label=model,
                        zorder=3, alpha=0.85)
        ratio.scatter([m / x for m, x in zip(modelled, measured)], range(len(points)),
                      color=color, marker=marker, s=36, label=model, zorder=3, alpha=0.85)
    low, high = 0.006, 2.0
    scatter.plot([low, high], [low, high], color="black", lw=1, label="y = x")
    scatter.fill_between([low, high], [low / 1.05, high / 1.05], [low * 1.05, high * 1.05],
                         color="grey", alpha=0.25, lw=0, label="within 5%")
    scatter.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high),
                xlabel="measured makespan, Linux TCP cubic (s)",
                ylabel="model makespan (s)", title="Each case and phase: model against measured")
    scatter.legend(loc="upper left", fontsize=8)
    ratio.axvspan(1 / 1.05, 1.05, color="grey", alpha=0.25, lw=0)
    ratio.axvline(1.0, color="black", lw=1)
    ratio.set_yticks(range(len(points)))
    ratio.set_yticklabels([f"{n} {p}" for n, p in points], fontsize=8)
    ratio.invert_yaxis()
    ratio.set(xscale="log", xlim=(0.35, 2.5), xlabel="model / measured makespan (log scale)",
              title="Error per case (grey: within 5%)")
    ratio.set_xticks([0.4, 0.6, 0.8, 1.0, 1.25, 1.6, 2.0], labels=["0.4", "0.6", "0.8", "1",
                                                                     "1.25", "1.6", "2"])
    ratio.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs/figures/validation.png")
    args = parser.parse_args()
    cases = measured_cases()
    results = {"tcp": {n: simulated(c) for n, c in cases.items()},
               "fluid": {n: simulated(c, "fluid") for n, c in cases.items()},
               "LV08": {n: lv08(c) for n, c in cases.items()}}
    print(tables(cases, results))
    figure(cases, results, args.output)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
