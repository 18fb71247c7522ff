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
# # Lesson 2: Why majority vote works
#
# **What you will learn**
#
# - how batch noise sets the chance $p$ that one worker's sign is right;
# - why the majority of $N$ such signs is right far more often, by a binomial tail you can
#   write down, and how the simulator's server reproduces it;
# - why an even number of workers buys nothing over one fewer (ties), and what each tie rule
#   does, including the one that quietly biases training;
# - what the server's other rule, the average of the signs (Avg), does differently from the
#   majority vote (MaVo), and what that means for a training run.
#
# In Distributed Lion every worker $i$ sends $\delta_i = \operatorname{sign}(c_i)$, one bit per
# parameter; the server adds them up, $S = \sum_i \delta_i \in [-N, N]$, and replies with
# $\operatorname{sign}(S)$ (MaVo) or $S/N$ (Avg).

# %%
import numpy as np
from scipy.stats import binom, norm

import experiments

import matplotlib.pyplot as plt
# %matplotlib inline

# %% [markdown]
# ## One worker's sign
#
# Take a coordinate whose true gradient is $\mu s$ ($s = \pm 1$) and whose per-sample gradient
# noise has standard deviation $\sigma$. A worker's minibatch of $B$ samples sees
# $\mu s + (\sigma/\sqrt{B})\,z$ with $z \sim \mathcal N(0, 1)$, so its sign is right with
# probability
#
# $$p = \Phi\!\left(\frac{\mu\sqrt{B}}{\sigma}\right),$$
#
# where $\Phi$ is the standard normal distribution function. With $\mu/\sigma = 1/8$, one sample
# is right 55% of the time and 64 samples 84% of the time.
#
# The objective below has 20,000 such coordinates with random true signs. It starts at
# $x = 0$, so one D-Lion step with learning rate 1 and no weight decay ends at exactly
# $x_1 = -\text{reply}$: the server's reply for every coordinate, read off `result.params`.
# (On the first step the momentum is zero, so each worker sends the sign of its gradient.)

# %%
SNR = 1 / 8  # mu / sigma


class Coins:
    """``dim`` independent coordinates with true gradient mu*s (s = ±1, fixed) and per-sample
    gradient noise of std sigma; the loss is linear, f(x) = mu * s.x."""

    def __init__(self, dim=20_000, mu=SNR, sigma=1.0, seed=0):
        self.dim, self.mu, self.sigma = dim, mu, sigma
        self.signs = np.where(np.random.default_rng(seed).random(dim) < 0.5, 1.0, -1.0)

    def init(self, rng):
        return np.zeros(self.dim)

    def grads(self, params, n_workers, batch_size, rng):
        noise = rng.standard_normal((n_workers, self.dim)) * self.sigma / np.sqrt(batch_size)
        loss = np.full(n_workers, self.mu * self.signs @ np.reshape(params, (-1, self.dim))[0])
        return loss, self.mu * self.signs + noise

    def evaluate(self, params):
        return {"loss": float(self.mu * self.signs @ params)}


coins = Coins()


def reply(workers, batch, seed=0, **method):
    """The server's reply to one D-Lion step, per coordinate, times the true sign:
    +1 where the reply points the right way, -1 where it is wrong (fractions for Avg)."""
    result = experiments.simulate(
        objective=coins, method={"name": "dlion", "lr": 1.0, "weight_decay": 0.0, **method},
        workers=workers, batch_size=batch, steps=1, seed=seed, eval_every=0, dtype="float64")
    return -result.params * coins.signs


def sign_accuracy(batch):
    return norm.cdf(SNR * np.sqrt(batch))


# %% [markdown]
# ## The vote of N workers
#
# The number $K$ of workers whose sign is right is binomial, $K \sim \mathrm{Bin}(N, p)$, when
# the workers' noises are independent. The vote is right when $K > N/2$; with an even $N$ the
# vote ties ($K = N/2$), and the default tie rule, `random`, then replies $\pm 1$ with a fair
# coin. So
#
# $$P_N(p) = \Pr[K > N/2] + \tfrac12 \Pr[K = N/2]
#          = \sum_{k > N/2} \binom{N}{k} p^k (1-p)^{N-k}
#            + \tfrac12 \binom{N}{N/2} \big(p(1-p)\big)^{N/2}\,[N \text{ even}].$$
#
# As $N$ grows, $P_N(p) \to 1$ for any $p > 1/2$: many weakly informed voters make a well
# informed vote (Condorcet's jury theorem).

# %%
def vote_accuracy(n, p):
    """P_N(p): the majority of n signs, each right with probability p, is right (random ties)."""
    n = np.asarray(n)
    tie = np.where(n % 2 == 0, binom.pmf(n // 2, n, p), 0.0)
    return binom.sf(n // 2, n, p) + 0.5 * tie


WORKERS = [1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33]
BATCHES = [1, 4, 16, 64]
simulated = {(n, b): np.mean(reply(n, b) > 0) for n in WORKERS for b in BATCHES}

# %% tags=["readme-figure"]
fig, ax = plt.subplots(figsize=(9.6, 4.4))
every_n = np.arange(1, 34)
for b, color in zip(BATCHES, ["#0072B2", "#009E73", "#E69F00", "#D55E00"]):
    p = sign_accuracy(b)
    ax.plot(every_n, vote_accuracy(every_n, p), color=color, lw=1.2,
            label=f"B = {b}: formula (p = {p:.2f})")
    ax.plot(WORKERS, [simulated[n, b] for n in WORKERS], "o", color=color, ms=5, mfc="none")
ax.plot([], [], "ko", mfc="none", label="simulated D-Lion server (20,000 coordinates)")
ax.set_xscale("log", base=2)
ax.set_xticks([1, 2, 4, 8, 16, 32], ["1", "2", "4", "8", "16", "32"])
ax.set_xlabel("workers N (log scale)")
ax.set_ylabel("fraction of coordinates where the\nmajority vote has the true sign")
ax.set_ylim(0.5, 1.01)
ax.set_title("Majority vote accuracy: binomial formula (lines) against the simulator (circles)\n"
             "B = samples per worker; μ/σ = 1/8", fontsize=10)
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** The circles sit on the lines: the simulated server's vote is right as
# often as the binomial tail says. The lines are staircases: $P_{2k} = P_{2k-1}$. Adding a
# worker to an odd number can only create ties, and a fair coin on a tie is right half the
# time, which is exactly what the new worker was worth. More samples per worker (larger $B$)
# and more workers are two ways to buy accuracy: at $B = 1$, 33 workers vote as well as one
# worker with about 16 samples.

# %% [markdown]
# ### Try it with sliders
#
# The distribution of $K$, the number of workers that are right, for $N = 9$ and $B = 4$: the
# vote is right on the blue bars. With `ipywidgets` installed (the `tutorials` extra), sliders
# under it redraw it for any $N$ and $B$; without it, the cell says so and the lesson goes on.

# %%
def show_vote(workers=9, batch=4):
    p = sign_accuracy(batch)
    k = np.arange(workers + 1)
    colors = np.where(2 * k > workers, "#0072B2", np.where(2 * k == workers, "#999999", "#D55E00"))
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    ax.bar(k, binom.pmf(k, workers, p), color=colors)
    ax.set_xlabel("workers whose sign is right, K")
    ax.set_ylabel("probability")
    ax.set_title(f"N = {workers}, B = {batch}: p = {p:.3f}, vote right with "
                 f"P = {vote_accuracy(workers, p):.3f} (grey: tie)", fontsize=9)
    fig.tight_layout()
    plt.show()


show_vote()
try:
    from ipywidgets import IntSlider, interact
except ImportError:
    print("For sliders: pip install 'dlion-sim[tutorials]' (it brings ipywidgets).")
else:
    interact(show_vote, workers=IntSlider(9, 1, 40, description="workers N"),
             batch=IntSlider(4, 1, 128, description="batch B"))

# %% [markdown]
# ## Ties and the tie rule
#
# A tie happens with probability $\binom{N}{N/2}(p(1-p))^{N/2}$, which is large for small even
# $N$ and noisy workers: at $N = 2$ and $p = 0.55$ it is 0.495. The four rules
# (`method.tie`):
#
# - `random` (default): a fair coin, so the wire stays 1-bit and the vote is unbiased;
# - `zero`: reply 0, do not move that coordinate (a ternary wire, 2 bits down);
# - `plus` / `minus`: always +1 / -1. Biased: every tied coordinate is pushed the same way,
#   whatever its true sign. A drift of $\eta \Pr[\text{tie}]$ per step, the same on every
#   coordinate, which no amount of training averages out.
#
# Below, two workers with one sample each, all four rules; the accuracy is split by the sign
# of the true gradient.

# %%
TIE_N, TIE_B = 2, 1
tie_replies = {rule: reply(TIE_N, TIE_B, tie=rule) for rule in ("random", "zero", "plus", "minus")}
p_tie = binom.pmf(TIE_N // 2, TIE_N, sign_accuracy(TIE_B))
p_right = binom.sf(TIE_N // 2, TIE_N, sign_accuracy(TIE_B))
print(f"N = {TIE_N}, B = {TIE_B}: P[tie] = {p_tie:.3f}, P[strict majority right] = {p_right:.3f}")
print(f"{'rule':8} {'right | s=+1':>13} {'right | s=-1':>13} {'zero reply':>11} "
      f"{'mean reply (bias)':>18}")
for rule, r in tie_replies.items():
    raw = r * coins.signs  # the reply itself, not times the true sign
    print(f"{rule:8} {np.mean(r[coins.signs > 0] > 0):13.3f} {np.mean(r[coins.signs < 0] > 0):13.3f} "
          f"{np.mean(r == 0):11.3f} {raw.mean():18.3f}")

# %% [markdown]
# With `plus`, positive coordinates are right $\Pr[K > N/2] + \Pr[\text{tie}] = 0.80$ of the
# time and negative ones only $0.30$, and the mean reply is $+0.5$ where the truth averages
# zero. The `zero` rule is unbiased but moves nothing on half of the coordinates; `random` is
# unbiased and keeps the wire 1-bit. The bundled `ties` study (README) shows what the bias does
# to training: with 2 workers the biased rules end at twice the loss.
#
# ## MaVo against Avg
#
# Avg replies $S/N$: along the true sign, its expected value is $2p - 1$ whatever $N$ (more
# workers only shrink its spread, as $\sqrt{4p(1-p)/N}$). MaVo's is $2P_N(p) - 1$, which grows
# towards 1 with $N$. So with the same learning rate, MaVo moves further along the true
# gradient each step; Avg's step shrinks where the workers disagree, which is also where the
# signal is weakest.

# %%
PROGRESS_B = 1
progress = {(agg, n): reply(n, PROGRESS_B, aggregate=agg) for agg in ("mavo", "avg")
            for n in WORKERS}
p1 = sign_accuracy(PROGRESS_B)

fig, ax = plt.subplots(figsize=(6.8, 3.9))
ax.plot(every_n, 2 * vote_accuracy(every_n, p1) - 1, color="#0072B2", lw=1.2,
        label="MaVo: 2 P$_N$(p) − 1")
ax.plot(every_n, np.full(every_n.size, 2 * p1 - 1), color="#56B4E9", lw=1.2, ls="--",
        label="Avg: 2p − 1")
for agg, agg_name, color in (("mavo", "MaVo", "#0072B2"), ("avg", "Avg", "#56B4E9")):
    ax.plot(WORKERS, [progress[agg, n].mean() for n in WORKERS], "o", color=color, mfc="none",
            ms=5, label=f"{agg_name}: simulated")
ax.set_xscale("log", base=2)
ax.set_xticks([1, 2, 4, 8, 16, 32], ["1", "2", "4", "8", "16", "32"])
ax.set_xlabel("workers N (log scale)")
ax.set_ylabel("mean reply along the true sign\n(step length in units of lr)")
ax.set_title(f"Expected progress per step, one sample per worker (p = {p1:.2f})", fontsize=10)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# What does this mean for training? Logistic regression, 8 workers with one sample each, the
# same learning rate for both rules, three seeds: MaVo's longer steps lead early; Avg's shorter
# steps on the noisy coordinates let it settle lower.

# %%
TRAIN = dict(objective={"name": "logistic", "features": 63}, workers=8, batch_size=1,
             steps=400, eval_every=20)
curves = {}
for agg in ("mavo", "avg"):
    runs = [experiments.simulate(method={"name": "dlion", "aggregate": agg, "lr": 3e-3},
                                 seed=seed, **TRAIN) for seed in range(3)]
    evaluated = ~np.isnan(runs[0].history["eval_loss"])
    curves[agg] = (runs[0].history["step"][evaluated],
                   np.mean([r.history["eval_loss"][evaluated] for r in runs], axis=0))

LABELS = {"mavo": "MaVo", "avg": "Avg"}
fig, ax = plt.subplots(figsize=(6.4, 3.8))
for agg, color in (("mavo", "#0072B2"), ("avg", "#56B4E9")):
    steps, loss = curves[agg]
    ax.plot(steps, loss, "-o", color=color, ms=3, label=f"D-Lion {LABELS[agg]}")
ax.set_xlabel("step")
ax.set_ylabel("evaluation loss (nats per sample,\nmean of 3 seeds)")
ax.set_title("Logistic regression, 8 workers × 1 sample, lr = 3e-3", fontsize=10)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
early, late = 100, 400
at = {agg: dict(zip(*curves[agg])) for agg in curves}
print(f"step {early}: MaVo {at['mavo'][early]:.3f}, Avg {at['avg'][early]:.3f};  "
      f"step {late}: MaVo {at['mavo'][late]:.3f}, Avg {at['avg'][late]:.3f}")

# %% [markdown]
# ## Try this
#
# - Set `TRAIN["batch_size"] = 32`: $p$ is close to 1 on most coordinates, both replies are
#   almost always $\pm 1$, and the two curves nearly coincide (the bundled `batch` study shows
#   the same from 16 samples per worker on).
# - Give the coins a larger signal, `Coins(mu=0.5)`: every curve of the first figure moves
#   up, and the staircase flattens sooner.
# - Make the workers' noise shared (add the same $z$ to every worker in `Coins.grads`): the
#   workers stop being independent, and the vote no longer beats one worker. The binomial
#   formula assumes independence.
#
# ## The lesson's claims, checked on the numbers above
#
# Each simulated fraction is a mean over $d$ = 20,000 independent coordinates, so it lies
# within $z\sqrt{P(1-P)/d}$ of the formula's $P$; $z = 4$ keeps a false alarm below 1 in 1,000
# over all the points checked.

# %%
Z, D = 4.0, coins.dim


def within_band(measured, expected, variance):
    return abs(measured - expected) <= Z * np.sqrt(variance / D)


for (n, b), measured in simulated.items():
    P = vote_accuracy(n, sign_accuracy(b))
    assert within_band(measured, P, P * (1 - P)), (n, b, measured, P)
for n in WORKERS:
    if n % 2 == 0:
        assert np.isclose(vote_accuracy(n, p1), vote_accuracy(n - 1, p1)), "P_2k = P_2k-1"

for n in WORKERS:
    mavo, avg = progress["mavo", n].mean(), progress["avg", n].mean()
    P = vote_accuracy(n, p1)
    assert within_band(mavo, 2 * P - 1, 1 - (2 * P - 1) ** 2), (n, mavo, P)
    assert within_band(avg, 2 * p1 - 1, 4 * p1 * (1 - p1) / n), (n, avg, p1)
assert progress["mavo", 33].mean() > 2 * progress["avg", 33].mean(), \
    "with many workers MaVo's expected step is much longer than Avg's"

zero_fraction = np.mean(tie_replies["zero"] == 0)
assert within_band(zero_fraction, p_tie, p_tie * (1 - p_tie)), "rule 'zero' replies 0 on ties"
plus_bias = (tie_replies["plus"] * coins.signs).mean()
assert within_band(plus_bias, p_tie, 1 - p_tie ** 2) and plus_bias > 0.4, \
    "rule 'plus' biases the mean reply by P[tie]"
assert abs((tie_replies["random"] * coins.signs).mean()) <= Z / np.sqrt(D), \
    "rule 'random' is unbiased"

assert at["mavo"][early] < at["avg"][early] - 0.02, "at batch 1 MaVo leads early"
assert at["avg"][late] < at["mavo"][late], "and Avg settles lower"
print("All claims of lesson 2 hold.")
