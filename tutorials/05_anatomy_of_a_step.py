# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 5: Anatomy of a step
#
# **What you will learn**
#
# - the phases of one synchronous step: compute, the *incast* of every message into the
#   server, aggregation, and the broadcast of the reply; each with its formula;
# - how a ring all-reduce replaces the server, and what it costs;
# - what a straggler does to everyone else, and why cheap communication makes stragglers
#   matter more, not less;
# - where the idle time goes, read from `result.history` and `result.trace`.
#
# Setting: 4 workers on a 10 Gb/s star (50 µs one-way latency per link), messages sized for a
# 25.6M-parameter model, 100 ms of compute per step, and a server that sums at 10 GB/s
# (`aggregate_per_byte = 0.1 ns`). D-Lion (1-bit messages) against G-AdamW (fp32) on the
# parameter server, and G-AdamW on a ring all-reduce.
#
# The runs use the ideal fluid network (`transport = "fluid"`), on which every phase has an exact
# formula; the simulator's default `"tcp"` adds framing and slow start (`docs/validation.md`).
# Deadlines, crashes and lost messages, which cut steps short or stretch them, are lesson 6.

# %%
import numpy as np

import experiments
from plots.timeline import plot_timeline

import matplotlib.pyplot as plt
# %matplotlib inline

# %%
N, P, B = 4, 25_600_000, 10e9
T_COMPUTE, ALPHA, AGG_PER_BYTE = 0.100, 50e-6, 0.1e-9
SLOWDOWN = 3.0
CONFIGS = {
    "D-Lion, server": ({"name": "dlion", "aggregate": "mavo", "lr": 3e-3}, "ps"),
    "G-AdamW, server": ({"name": "gadamw", "lr": 1e-2}, "ps"),
    "G-AdamW, ring": ({"name": "gadamw", "lr": 1e-2}, "ring"),
}
BITS = {"D-Lion, server": P, "G-AdamW, server": 32 * P, "G-AdamW, ring": 32 * P}  # per message


def run(config, stragglers=0.0, steps=30):
    """A traced run; ``stragglers``: the chance that a worker computes SLOWDOWN times slower."""
    method, collective = CONFIGS[config]
    return experiments.simulate(
        objective={"name": "logistic", "features": 63}, method=method, workers=N, steps=steps,
        seed=1, network={"bandwidth": B, "latency": ALPHA, "collective": collective,
                 "transport": "fluid", "chunk": 0},  # the textbook ring of the formulas
        cluster={"model_params": P},
        compute={"step_time": T_COMPUTE, "aggregate_per_byte": AGG_PER_BYTE,
                 "straggler_prob": stragglers, "straggler_slowdown": SLOWDOWN},
        run={"trace": True})


steady = {config: run(config) for config in CONFIGS}

# %% [markdown]
# ## The phases, one by one
#
# `result.trace` lists every phase of every node: `(node, phase, start_s, end_s, bytes, step)`.
# Here is one step of each configuration on a common time axis.

# %%
PHASE_COLORS = {"compute": "#0072B2", "send": "#E69F00", "idle": "#C8C8C8",
                "aggregate": "#009E73", "receive": "#CC79A7"}


def step_events(result, step):
    """The trace rows of one step (1-based) as (node, phase, start, end), for every node."""
    seen, rows = {}, []
    for node, phase, start, end, _, _ in result.trace:
        seen[node, phase] = seen.get((node, phase), 0) + 1
        if seen[node, phase] == step:
            rows.append((node, phase, start, end))
    return rows


fig, axes = plt.subplots(len(CONFIGS), 1, figsize=(10, 6.4), sharex=True)
for ax, (config, result) in zip(axes, steady.items()):
    rows = step_events(result, 2)
    begin = min(r[2] for r in rows)
    nodes = sorted({r[0] for r in rows}, key=lambda n: (not n.startswith("worker"), n))
    for node, phase, start, end in rows:
        ax.barh(nodes.index(node), (end - start) * 1e3, left=(start - begin) * 1e3,
                color=PHASE_COLORS[phase], height=0.7)
        if phase == "aggregate" and end == start:  # an instant still deserves a mark
            ax.plot([(start - begin) * 1e3] * 2, [nodes.index(node) - 0.35,
                                                    nodes.index(node) + 0.35], color="#009E73")
    ax.set_yticks(range(len(nodes)),
                  [n if n != "workers" else "ring (all)" for n in nodes], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(config, fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
axes[-1].set_xlabel("simulated time since the step began (ms)")
handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in PHASE_COLORS.values()]
fig.legend(handles, PHASE_COLORS, loc="lower center", ncol=5, fontsize=8, frameon=False)
fig.suptitle("One step (step 2), no stragglers: 4 workers, 10 Gb/s, 25.6M parameters",
             fontsize=11)
fig.tight_layout(rect=(0, 0.04, 1, 1))
plt.show()

# %% [markdown]
# **Reading it.** On the server, the $N$ messages of $M$ bits leave their workers at the same
# moment and squeeze through the server's single link: the incast takes
# $\alpha + N M / B$, not $\alpha + M/B$. The server then sums $N M / 8$ bytes
# ($t_\text{agg}$ = 0.1 ns per byte here), and the reply of $M'$ bits goes back to $N$
# workers through the same link, $\alpha + N M'/B$:
#
# $$T_\text{step} = t_c + \Big(\alpha + \frac{N M}{B}\Big) + t_\text{agg}\frac{N M}{8}
#    + \Big(\alpha + \frac{N M'}{B}\Big).$$
#
# For D-Lion, $M = M' = P$ bits: 10.3 ms each way and 1.3 ms of summing. For G-AdamW,
# $M = M' = 32P$: 328 ms each way and 41 ms of summing. The ring all-reduce has no server:
# $2(N-1)$ rounds in which every worker sends a piece of $M/N$ bits to its neighbour while
# receiving one, each round paying a worker-to-worker latency $\alpha_p = 2\alpha$:
#
# $$T_\text{ring} = 2(N-1)\,\alpha_p + 2\,\frac{N-1}{N}\,\frac{M}{B},$$
#
# 123 ms here against the server's 697 ms: every link carries traffic at once, instead of one
# link carrying everything. (The timeline shows the ring as one "send" per worker.)
#
# `result.history` has the same phases as per-step means over the workers (`compute_s`,
# `comm_up_s`, `idle_s`, `aggregate_s`, `comm_down_s`):

# %%
PHASES = ("compute_s", "comm_up_s", "idle_s", "aggregate_s", "comm_down_s")
print(f"{'':17}" + "".join(f"{p:>13}" for p in PHASES) + f"{'step':>10}")
for config, result in steady.items():
    h = result.history
    step = np.diff(h["time_s"])[-1]
    print(f"{config:17}" + "".join(f"{h[p][-1] * 1e3:10.2f} ms" for p in PHASES)
          + f"{step * 1e3:7.1f} ms")

# %% [markdown]
# ## Stragglers
#
# Now each worker, on each step, has a 20% chance of computing 3 times slower (300 ms). A
# synchronous step waits for the last message, so one straggler delays everyone.
#
# How much? The server's link is busy from the first message to the last without a gap as
# long as there is work queued, so with $k$ stragglers the last message arrives at
#
# $$\alpha + \max\Big(t_c + \frac{N M}{B},\; s\,t_c + \frac{k M}{B}\Big)$$
#
# after the step began ($s$ = 3, the slowdown). For G-AdamW the first term wins (0.43 s against
# 0.38 s with one straggler): the incast was going to take that long anyway, and the straggler
# is hidden. For D-Lion the second term wins (0.30 s against 0.11 s): its step is almost
# three times longer, and the fast workers spend that time idle.

# %%
STRAGGLERS = 0.2
slow = {config: run(config, stragglers=STRAGGLERS) for config in CONFIGS}

# %% tags=["readme-figure"]
fig = plot_timeline([slow["D-Lion, server"], slow["G-AdamW, server"]], steps=(1, 4),
                    title="Stragglers (3x slower, probability 0.2), steps 1-4")
plt.show()

# %% [markdown]
# ## Where the time goes
#
# Mean seconds per step in each phase, averaged over the workers and 30 steps, without and
# with stragglers (the same straggler draws for every configuration: they come from the run's
# seed).

# %%
LABELS = {"compute_s": "compute", "comm_up_s": "send", "idle_s": "idle (waiting)",
          "aggregate_s": "aggregate", "comm_down_s": "receive"}
COLORS = dict(zip(PHASES, PHASE_COLORS.values()))
COLORS["idle_s"], COLORS["comm_up_s"] = PHASE_COLORS["idle"], PHASE_COLORS["send"]
breakdown = {}
for config in CONFIGS:
    for label, results in (("no stragglers", steady), ("stragglers", slow)):
        h = results[config].history
        breakdown[f"{config}, {label}"] = {p: float(np.mean(h[p])) for p in PHASES}

fig, ax = plt.subplots(figsize=(9.5, 3.8))
names = list(breakdown)
for row, name in enumerate(names):
    left = 0.0
    for p in PHASES:
        ax.barh(row, breakdown[name][p], left=left, color=COLORS[p], height=0.7,
                label=LABELS[p] if row == 0 else None)
        left += breakdown[name][p]
    ax.text(left, row, f"  {left * 1e3:.0f} ms", va="center", fontsize=8)
ax.set_yticks(range(len(names)), names, fontsize=8)
ax.invert_yaxis()
ax.set_xlim(0, 1.0)
ax.set_xlabel("mean seconds per step, per worker")
ax.set_title("Where a step's time goes (30 steps)", fontsize=10)
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()

idle_share = {name: b["idle_s"] / sum(b.values()) for name, b in breakdown.items()}
for name, share in idle_share.items():
    print(f"{name:35} idle {share:6.1%} of a worker's time")

# %% [markdown]
# **What to notice.** Stragglers make D-Lion's steps much longer, and the extra time is idle
# time of the fast workers; G-AdamW on the server hardly notices them. Cheap communication
# removes the cover that a long incast gave the stragglers: after 1-bit compression, the next
# bottleneck is the slowest worker. On the ring the waiting shows up inside the collective
# ("send"), because a worker waits for its neighbour's piece rather than for a server.
# Remedies that the simulator can study: deadline votes that go ahead without the last
# messages, and backup workers.
#
# ## Try this
#
# - Set `B = 1e9` (1 Gb/s): D-Lion's incast becomes 103 ms and starts hiding stragglers too.
# - Set `N = 16`: the server's incast grows with $N$, the ring's time barely does.
# - Add `"jitter": 0.2` to the compute section of `run`: every worker's time varies a little
#   on every step, and the idle time appears even without stragglers.
#
# ## The lesson's claims, checked on the runs above

# %%
def first_and_last(result, steps):
    """Per step: when the step began (first compute start) and when the server (or the ring)
    had every message (last send end); and how many workers straggled."""
    out = []
    for step in range(1, steps + 1):
        rows = step_events(result, step)
        computes = [end - start for _, phase, start, end in rows if phase == "compute"]
        begin = min(start for _, phase, start, _ in rows if phase == "compute")
        last = max(end for _, phase, _, end in rows if phase == "send")
        out.append((begin, last, sum(c > 1.5 * T_COMPUTE for c in computes)))
    return out


for config in ("D-Lion, server", "G-AdamW, server"):
    M = BITS[config]
    h = steady[config].history
    assert np.allclose(h["comm_up_s"], ALPHA + N * M / B, rtol=1e-9), "incast = α + N M / B"
    assert np.allclose(h["comm_down_s"], ALPHA + N * M / B, rtol=1e-9), "broadcast likewise"
    assert np.allclose(h["aggregate_s"], AGG_PER_BYTE * N * M / 8, rtol=1e-9)
    assert np.allclose(h["idle_s"], 0.0, atol=1e-12), "equal workers never wait"
    for begin, last, k in first_and_last(slow[config], 30):
        expected = ALPHA + max(T_COMPUTE + N * M / B, SLOWDOWN * T_COMPUTE * (k > 0) + k * M / B)
        assert np.isclose(last - begin, expected, rtol=1e-9), (config, k, last - begin, expected)

ring = steady["G-AdamW, ring"].history
assert np.allclose(ring["comm_up_s"], 2 * (N - 1) * 2 * ALPHA + 2 * (N - 1) / N * 32 * P / B,
                   rtol=1e-9), "ring all-reduce = 2(N-1) α_p + 2 (N-1)/N M / B"

k_per_step = [k for _, _, k in first_and_last(slow["D-Lion, server"], 30)]
assert any(k == 0 for k in k_per_step) and any(k > 0 for k in k_per_step)
dlion_growth = (sum(breakdown["D-Lion, server, stragglers"].values())
                / sum(breakdown["D-Lion, server, no stragglers"].values()))
adamw_growth = (sum(breakdown["G-AdamW, server, stragglers"].values())
                / sum(breakdown["G-AdamW, server, no stragglers"].values()))
assert dlion_growth > 1.3 and adamw_growth < 1.1, \
    "stragglers lengthen D-Lion's steps a lot and G-AdamW's (on the server) hardly"
assert idle_share["D-Lion, server, stragglers"] > 3 * idle_share["G-AdamW, server, stragglers"], \
    "with stragglers, idle time is a far larger share of D-Lion's step"
print("All claims of lesson 5 hold.")
