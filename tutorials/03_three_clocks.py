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
# # Lesson 3: Three clocks: steps, seconds and bits
#
# **What you will learn**
#
# - to read one set of runs against three clocks: optimizer steps, simulated wall-clock
#   seconds and bits sent;
# - where a step's simulated time comes from, as a formula you can check against the
#   simulator;
# - why the method that wins per step is not the one that wins per second or per bit, and
#   what would make it win again.
#
# The runs: D-Lion (majority vote) against global Lion and global AdamW, which exchange the
# mean fp32 gradient, on logistic regression with 8 workers on a 1 Gb/s star network, every
# message sized as for a 25.6M-parameter model (ResNet-50) and 100 ms of compute per step
# (the README's quickstart study, shortened).
#
# The runs here use the ideal fluid network (`transport = "fluid"`), on which the step-time
# formulas below hold exactly. The simulator's default, `"tcp"`, adds what real TCP costs: the
# framing of every segment (about 6% at MTU 1500) and slow start on every message, which matters
# on long round trips (`docs/validation.md`). Try this: set `"transport": "tcp"` and see how far
# the formulas move.

# %%
import numpy as np

import experiments
from plots.curves import plot_curves

import matplotlib.pyplot as plt
# %matplotlib inline

# %% [markdown]
# ## Three methods, three seeds each

# %%
SETTING = dict(objective={"name": "logistic", "features": 63}, workers=8, batch_size=32,
               steps=250, eval_every=10,
               network={"bandwidth": "1Gbps", "latency": "50us", "transport": "fluid",
                        "collective": "ps"},
               cluster={"model_params": 25_600_000}, compute={"step_time": "100ms"})
METHODS = {
    "D-Lion (MaVo)": {"name": "dlion", "aggregate": "mavo", "lr": 3e-3},
    "G-Lion": {"name": "glion", "lr": 3e-3},
    "G-AdamW": {"name": "gadamw", "lr": 1e-2},
}
SEEDS = range(3)
runs = {label: [experiments.simulate(method=method, seed=seed, **SETTING) for seed in SEEDS]
        for label, method in METHODS.items()}

# %% [markdown]
# `result.history` holds one row per step. Next to the losses it has the three clocks:
# `step`, `time_s` (the simulated time at which the step's last reply arrived) and the
# cumulative `bits_up` and `bits_down` of one worker.

# %%
h = runs["D-Lion (MaVo)"][0].history
for k in (0, 1, 9):
    print(f"step {h['step'][k]:.0f}: time_s = {h['time_s'][k]:.4f} s, "
          f"bits_up = {h['bits_up'][k]:.4g}, bits_down = {h['bits_down'][k]:.4g}, "
          f"eval_loss = {h['eval_loss'][k]:.4f}")

# %% tags=["readme-figure"]
fig = plot_curves([r for rs in runs.values() for r in rs], metric="loss",
                  axes=("step", "time", "bits"),
                  title="The same runs against three clocks (logistic regression, 8 workers, "
                        "1 Gb/s, 25.6M-parameter messages)")
plt.show()

# %% [markdown]
# **What to notice.** Against steps (left), G-AdamW is ahead and the two Lions are level:
# D-Lion's 1-bit vote loses almost nothing against G-Lion's exact mean gradient. Against
# simulated seconds (middle) and bits (right), the order flips: D-Lion reaches every loss
# level more than ten times sooner and with more than ten times fewer bits. The step axis
# measures the *optimizer*; the other two measure the *system*.
#
# ## Where the seconds come from
#
# On a parameter-server star, each step is: compute ($t_c$), then every worker pushes its
# message to the server, whose single link carries all $N$ of them (the *incast*), then the
# server sends each worker its reply over the same link. With $P$ parameters, $u$ bits per
# parameter up and $v$ down, link bandwidth $B$ and one-way latency $\alpha$ per message:
#
# $$T_\text{step} = t_c + 2\alpha + \frac{N P (u + v)}{B}.$$
#
# D-Lion MaVo has $u = v = 1$; the global methods send fp32, $u = v = 32$. So the time axis is
# the step axis stretched by a different factor per method, and the bits axis by
# $(u+v)P$ per step.

# %%
N, P, B = SETTING["workers"], SETTING["cluster"]["model_params"], 1e9
T_COMPUTE, ALPHA = 0.100, 50e-6
WIRE_BITS = {"D-Lion (MaVo)": 1 + 1, "G-Lion": 32 + 32, "G-AdamW": 32 + 32}


def step_time(bits_per_param, bandwidth=B, workers=N, params=P):
    """Seconds per step on the star: compute, two latencies, the server link's traffic."""
    return T_COMPUTE + 2 * ALPHA + workers * params * bits_per_param / bandwidth


for label, rs in runs.items():
    simulated = np.diff(rs[0].history["time_s"]).mean()
    print(f"{label:14} formula {step_time(WIRE_BITS[label]):.4f} s/step, "
          f"simulated {simulated:.4f} s/step, "
          f"{rs[0].summary['bits_per_param_per_step']['total']:.0f} bits per parameter per step")

# %% [markdown]
# ## Who wins depends on the clock
#
# Take a target loss of 0.36 nats and read off, for every run, when it first got there on
# each clock.

# %%
TARGET = 0.36


def reached(result, clock):
    """The first value of ``clock`` at which the evaluation loss is <= TARGET (NaN: never)."""
    h = result.history
    hit = np.flatnonzero(h["eval_loss"] <= TARGET)
    if hit.size == 0:
        return np.nan
    k = hit[0]
    return {"steps": h["step"][k], "seconds": h["time_s"][k],
            "Gbit": (h["bits_up"][k] + h["bits_down"][k]) / 1e9}[clock]


CLOCKS = ("steps", "seconds", "Gbit")
to_target = {label: {c: np.mean([reached(r, c) for r in rs]) for c in CLOCKS}
             for label, rs in runs.items()}
print(f"to reach an evaluation loss of {TARGET} (mean of {len(SEEDS)} seeds):")
print(f"{'':14}" + "".join(f"{c:>12}" for c in CLOCKS))
for label, row in to_target.items():
    print(f"{label:14}" + "".join(f"{row[c]:12.4g}" for c in CLOCKS))
winners = {c: min(to_target, key=lambda label: to_target[label][c]) for c in CLOCKS}
print("winner per clock:", winners)

# %% [markdown]
# G-AdamW needs about 2.5 times fewer steps, but each of its steps costs about 26 times more
# time here: $0.1 + 8 \cdot 25.6\text{M} \cdot 64 / 10^9 = 13.2$ s against 0.51 s. It wins
# on seconds only where the network is fast enough that compute dominates both step times,
# which is the subject of lesson 4.
#
# ## Try this
#
# - Set `SETTING["network"]["bandwidth"] = "100Gbps"`: the step times become 0.231 s and
#   0.104 s, a ratio of 2.2, smaller than G-AdamW's advantage in steps, so G-AdamW wins the
#   seconds clock too (about 18 s against 21 s to the target). The bits clock does not
#   change: bits do not depend on the network.
# - Set `SETTING["cluster"]["model_params"] = 0`: messages are sized for the real 64
#   parameters, communication is negligible, and seconds become steps times 0.1 s.
# - Add `"D-Lion (Avg)": {"name": "dlion", "aggregate": "avg", "lr": 3e-3}`: its reply has
#   ceil(log2(N+1)) = 4 bits per parameter, so 5 bits per step instead of 2.
#
# ## The lesson's claims, checked on the runs above

# %%
for label, rs in runs.items():
    for r in rs:
        seconds = np.diff(r.history["time_s"], prepend=0.0)
        assert np.allclose(seconds, step_time(WIRE_BITS[label]), rtol=1e-9), \
            f"{label}: every simulated step takes the formula's time"
        assert np.allclose(np.diff(r.history["bits_up"] + r.history["bits_down"], prepend=0.0),
                           WIRE_BITS[label] * P), f"{label}: bits per step = (u + v) P"

dlion, glion, adamw = (to_target[k] for k in METHODS)
assert adamw["steps"] < 0.6 * dlion["steps"], "per step, G-AdamW is clearly ahead"
assert abs(dlion["steps"] - glion["steps"]) <= 0.15 * glion["steps"], \
    "per step, the 1-bit vote costs D-Lion little against G-Lion"
for clock in ("seconds", "Gbit"):
    assert dlion[clock] * 10 < min(adamw[clock], glion[clock]), \
        f"per {clock}, D-Lion reaches the target more than 10 times sooner"
assert winners["steps"] == "G-AdamW" and winners["seconds"] == winners["Gbit"] == "D-Lion (MaVo)"
print("All claims of lesson 3 hold.")
