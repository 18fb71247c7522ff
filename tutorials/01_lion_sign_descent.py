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
# # Lesson 1: Lion is sign descent with momentum
#
# **What you will learn**
#
# - the Lion update in three lines, and why every coordinate moves by exactly the learning rate;
# - how its path differs from SGD's and AdamW's in an ill-conditioned valley and on Rosenbrock;
# - why multiplying the loss by a constant changes nothing for Lion, and everything for SGD;
# - what the two betas do when gradients are noisy;
# - what decoupled weight decay does: it keeps every parameter inside a box of half-width 1/λ.
#
# Every run goes through the simulator's Python entry point, `experiments.simulate`, with one
# worker. The objectives are two-parameter functions written here: anything with `dim`,
# `init`, `grads` and `evaluate` can be passed as `objective=`. Ours also remembers every point
# the optimizer asked a gradient at, so we can draw the path.

# %%
import numpy as np

import experiments

import matplotlib.pyplot as plt
# %matplotlib inline

# %% [markdown]
# ## The update
#
# With gradient $g_t$, momentum $m$, learning rate $\eta$ and weight decay $\lambda$, Lion
# (Chen et al., 2023) does, coordinate by coordinate:
#
# $$c_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
#   x_t = x_{t-1} - \eta\,\big(\operatorname{sign}(c_t) + \lambda x_{t-1}\big), \qquad
#   m_t = \beta_2 m_{t-1} + (1-\beta_2)\, g_t .$$
#
# The step is the *sign* of a blend of the momentum and the fresh gradient. Without weight
# decay every coordinate moves by exactly $\pm\eta$, however large or small its gradient:
# that is sign descent. Compare SGD with momentum, $b_t = \mu b_{t-1} + g_t$,
# $x_t = x_{t-1} - \eta b_t$, whose step is proportional to the gradient, and AdamW, whose step
# $\hat m/(\sqrt{\hat v}+\epsilon)$ is close to $\pm 1$ only while a coordinate's gradients keep
# their sign.

# %%
class Traced2D:
    """A two-parameter objective f (optionally times ``scale``, plus Gaussian gradient noise of
    std ``noise`` for a batch of one) that records every point a gradient was taken at."""

    dim = 2

    def __init__(self, f, grad, start, scale=1.0, noise=0.0):
        self.f, self.grad, self.start = f, grad, np.asarray(start, dtype=float)
        self.scale, self.noise = scale, noise
        self.points = []

    def init(self, rng):
        return self.start.copy()

    def grads(self, params, n_workers, batch_size, rng):
        self.points.append(np.array(params, dtype=float).reshape(-1, 2)[0])
        x = np.broadcast_to(params, (n_workers, 2))
        g = self.scale * self.grad(x)
        if self.noise:
            g = g + self.noise / np.sqrt(batch_size) * rng.standard_normal(g.shape)
        return self.scale * self.f(x), g

    def evaluate(self, params):
        return {"loss": float(self.scale * self.f(params))}


def path(objective, method, steps, seed=0):
    """The points visited by ``method`` (a dict for experiments.simulate), shape (steps+1, 2)."""
    result = experiments.simulate(objective=objective, method=method, workers=1, batch_size=1,
                                  steps=steps, seed=seed, eval_every=0, dtype="float64")
    return np.vstack([objective.points, result.params])


def quadratic(h, centre=(0.0, 0.0)):
    """f(x) = 1/2 sum_k h_k (x_k - centre_k)^2 and its gradient."""
    h, centre = np.asarray(h, dtype=float), np.asarray(centre, dtype=float)
    return (lambda x: 0.5 * np.sum(h * (x - centre) ** 2, axis=-1),
            lambda x: h * (x - centre))


def rosenbrock(x):
    return (1 - x[..., 0]) ** 2 + 100 * (x[..., 1] - x[..., 0] ** 2) ** 2


def rosenbrock_grad(x):
    a, b = x[..., 0], x[..., 1]
    return np.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], axis=-1)


def contours(ax, f, xlim, ylim, levels=14):
    """Grey log-spaced level sets of f over the window."""
    X, Y = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    Z = f(np.stack([X, Y], axis=-1))
    ax.contour(X, Y, Z, levels=np.geomspace(Z.min() + 1e-3, Z.max(), levels), colors="0.82",
               linewidths=0.7)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel("parameter $x_1$ (dimensionless)")
    ax.set_ylabel("parameter $x_2$ (dimensionless)")


# %% [markdown]
# ## Two landscapes
#
# A valley 100 times steeper across than along ($h = (1, 0.01)$), and Rosenbrock's banana
# $(1-x_1)^2 + 100\,(x_2-x_1^2)^2$ with its minimum at (1, 1). Each method's learning rate was
# picked by hand from a factor-3 grid (the lowest final loss); SGD uses momentum 0.9.

# %%
valley, valley_grad = quadratic([1.0, 0.01])
METHODS = {"Lion": "lion", "AdamW": "gadamw", "SGD + momentum": "gsgd"}
COLORS = {"Lion": "#0072B2", "AdamW": "#D55E00", "SGD + momentum": "#CC79A7"}
LANDSCAPES = {
    "valley": dict(f=valley, grad=valley_grad, start=(2.5, 3.0), steps=150,
                   lr={"Lion": 0.05, "AdamW": 0.05, "SGD + momentum": 0.1},
                   xlim=(-3, 3), ylim=(-2, 3.5)),
    "Rosenbrock": dict(f=rosenbrock, grad=rosenbrock_grad, start=(-1.5, 2.0), steps=1000,
                       lr={"Lion": 0.01, "AdamW": 0.1, "SGD + momentum": 1e-3},
                       xlim=(-2, 2), ylim=(-1, 3)),
}
paths = {}
for land, cfg in LANDSCAPES.items():
    for label, name in METHODS.items():
        method = {"name": name, "lr": cfg["lr"][label], "weight_decay": 0.0}
        paths[land, label] = path(Traced2D(cfg["f"], cfg["grad"], cfg["start"]), method,
                                  cfg["steps"])

# %% tags=["readme-figure"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
for ax, (land, cfg) in zip(axes, LANDSCAPES.items()):
    contours(ax, cfg["f"], cfg["xlim"], cfg["ylim"])
    for label in METHODS:
        p = paths[land, label]
        ax.plot(p[:, 0], p[:, 1], color=COLORS[label], lw=1.3,
                label=f"{label} (lr {cfg['lr'][label]:g})")
    ax.plot(*cfg["start"], "ko", ms=5)
    ax.plot(*({"valley": (0, 0), "Rosenbrock": (1, 1)}[land]), "k*", ms=10)
    ax.set_title(f"{land}: {cfg['steps']} steps from the black dot to the star", fontsize=10)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
fig.suptitle("Lion moves every coordinate by ±lr: its path is made of 45° segments", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** In the valley, Lion's path is a sequence of diagonal segments: both
# coordinates move by the same amount each step, although the gradient along $x_2$ is 100 times
# weaker. SGD follows the steep direction first and then crawls along the flat one; AdamW,
# whose step is nearly $\pm\eta$ while gradients keep their sign, starts like Lion. Lion's long
# momentum ($\beta_2 = 0.99$) carries it past the minimum before it turns back; near a minimum
# it keeps hopping at a distance of about $\eta$, because its step never shrinks (a decaying
# learning rate, `schedule = "cosine"`, fixes that).
#
# ## The step is scale-free
#
# Multiply the loss by 1024 (a power of two, so the floating-point arithmetic is exact): every
# gradient is 1024 times larger, and so is every momentum. The sign of $c_t$ does not change,
# so Lion visits exactly the same points. SGD with the same learning rate takes 1024-times
# larger steps.

# %%
scaled = {}
for label, name, lr in [("Lion", "lion", 0.05), ("SGD + momentum", "gsgd", 0.1)]:
    for scale in (1.0, 1024.0):
        objective = Traced2D(valley, valley_grad, (2.5, 3.0), scale=scale)
        with np.errstate(over="ignore"):  # the diverging run overflows float32 on the wire
            scaled[label, scale] = path(objective, {"name": name, "lr": lr, "weight_decay": 0.0},
                                        150)

fig, ax = plt.subplots(figsize=(6.4, 3.8))
for (label, scale), p in scaled.items():
    with np.errstate(over="ignore", invalid="ignore"):
        relative = valley(p) / valley(p[0])
    ax.semilogy(relative, color=COLORS[label], ls="-" if scale == 1 else "--", lw=1.4,
                label=f"{label}, loss × {scale:g}")
ax.set_xlabel("step")
ax.set_ylabel("f(x) / f(x$_0$) (unscaled loss)")
ax.set_ylim(1e-6, 1e6)
ax.legend(fontsize=8)
ax.set_title("Same learning rate, loss multiplied by 1024", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# The two Lion lines lie on top of each other; SGD's scaled run blows up within a few steps
# (the simulator stops a run whose loss is no longer finite).
#
# ## What the betas do
#
# $\beta_2$ is the memory of the momentum; $\beta_1$ is how much of the *fresh* gradient enters
# the sign. With noisy gradients, a sign taken from one gradient ($\beta_1 = 0$, which is
# signSGD, or $\beta_2 = 0$, no memory) is wrong on many steps; averaging first cuts the noise
# by about $\sqrt{(1-\beta_2)/(1+\beta_2)}$. Too much weight on the old momentum
# ($\beta_1 = 0.99$) makes the step lag behind the landscape. Here: a bowl with $h = (1, 0.1)$
# and gradient noise of standard deviation 1 per coordinate, learning rate 0.01, three seeds.

# %%
bowl, bowl_grad = quadratic([1.0, 0.1])
BETAS = [(0.9, 0.99), (0.9, 0.9), (0.9, 0.0), (0.0, 0.99), (0.99, 0.99)]
NOISE_STEPS, SEEDS = 1000, 3
noisy_loss = {}
for betas in BETAS:
    runs = []
    for seed in range(SEEDS):
        objective = Traced2D(bowl, bowl_grad, (2.5, 3.0), noise=1.0)
        p = path(objective, {"name": "lion", "lr": 0.01, "weight_decay": 0.0,
                             "betas": list(betas)}, NOISE_STEPS, seed=seed)
        runs.append(bowl(p))
    noisy_loss[betas] = np.mean(runs, axis=0)

fig, ax = plt.subplots(figsize=(6.8, 3.9))
window = np.ones(50) / 50
for betas, loss in noisy_loss.items():
    ax.semilogy(np.arange(window.size, loss.size + 1), np.convolve(loss, window, "valid"),
                lw=1.4, label=f"β1 = {betas[0]}, β2 = {betas[1]}")
ax.set_xlabel("step")
ax.set_ylabel("loss f(x) (mean of 3 seeds,\nmoving average over 50 steps)")
ax.set_title("Noisy gradients: the sign of an average beats the sign of one gradient",
             fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

tail = {betas: loss[NOISE_STEPS // 2:].mean() for betas, loss in noisy_loss.items()}
for betas, value in tail.items():
    print(f"β1 = {betas[0]:<4}  β2 = {betas[1]:<4}  mean loss over the last 500 steps: {value:.4f}")

# %% [markdown]
# ## Weight decay keeps Lion in a box
#
# Decoupled weight decay subtracts $\eta\lambda x$. Where $|x_k| \le 1/\lambda$, one step gives
# $|x_k'| \le (1-\eta\lambda)|x_k| + \eta \le 1/\lambda$, so a coordinate that is inside the
# box $\|x\|_\infty \le 1/\lambda$ never leaves it (when $\eta\lambda \le 1$), and one that is
# outside shrinks towards it geometrically. Lion with weight decay therefore minimises $f$
# *inside the box* (Chen et al. show it solves that constrained problem). Below, the minimum
# is at (3, 1) but $\lambda = 0.5$ allows only $|x_k| \le 2$: the run ends near (2, 1).

# %%
WD, WD_LR = 0.5, 0.02
outside, outside_grad = quadratic([1.0, 1.0], centre=(3.0, 1.0))
boxed = {wd: path(Traced2D(outside, outside_grad, (-4.0, 3.5)),
                  {"name": "lion", "lr": WD_LR, "weight_decay": wd}, 600)
         for wd in (0.0, WD)}

fig, ax = plt.subplots(figsize=(6.0, 4.6))
contours(ax, outside, (-4.5, 5.5), (-2.5, 4))
half = 1 / WD
ax.add_patch(plt.Rectangle((-half, -half), 2 * half, 2 * half, fill=False, ls="--", lw=1.2,
                           color="black", label="box |x|∞ ≤ 1/λ"))
for wd, p in boxed.items():
    ax.plot(p[:, 0], p[:, 1], lw=1.3, color="#0072B2" if wd else "#009E73",
            label=f"Lion, λ = {wd:g} (ends at {p[-1, 0]:.2f}, {p[-1, 1]:.2f})")
ax.plot(3, 1, "k*", ms=10)
ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
ax.set_title(f"Weight decay λ = {WD}: the minimum (star) is outside the box", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Try this
#
# - Give Lion `"schedule": "cosine"` on Rosenbrock: the hopping around (1, 1) dies out as the
#   learning rate decays.
# - Set `"betas": [0.9, 0.9]` in the valley: less overshoot, because the momentum forgets the
#   early gradients sooner.
# - Scale the loss by 1024 for AdamW: it is scale-free too, except for its $\epsilon$, which
#   matters once gradients are tiny.
# - Raise the weight decay to λ = 2 (box half-width 0.5): the run ends at (0.5, 0.5).
#
# ## The lesson's claims, checked on the runs above

# %%
lion_steps = np.abs(np.diff(paths["valley", "Lion"], axis=0))
assert np.allclose(lion_steps, LANDSCAPES["valley"]["lr"]["Lion"], rtol=1e-12), \
    "without weight decay every Lion step moves every coordinate by exactly lr"
sgd_steps = np.abs(np.diff(paths["valley", "SGD + momentum"], axis=0))
assert sgd_steps.max() / sgd_steps.min() > 100, "SGD's step follows the gradient's size"

assert np.array_equal(scaled["Lion", 1.0], scaled["Lion", 1024.0]), \
    "Lion visits the same points on f and on 1024 f"
sgd_scaled = scaled["SGD + momentum", 1024.0]
assert valley(sgd_scaled).max() > 1e6 * valley(sgd_scaled[0]), \
    "SGD with the same learning rate diverges on 1024 f"

assert rosenbrock(paths["Rosenbrock", "Lion"][-1]) < 0.1, "Lion ends near Rosenbrock's minimum"

best = tail[0.9, 0.99]
assert 3 * best < tail[0.9, 0.0], "momentum memory (β2) averages the gradient noise away"
assert 3 * best < tail[0.0, 0.99], "the sign of one fresh gradient (β1 = 0) is noisier"

p = boxed[WD]
inside = np.max(np.abs(p), axis=1) <= half + 1e-12
entered = np.argmax(inside)
assert inside[entered:].all(), "once inside the box |x|∞ ≤ 1/λ, Lion never leaves it"
assert np.abs(p[-1] - [half, 1.0]).max() < 10 * WD_LR, \
    "Lion with weight decay ends at the box-constrained minimum (2, 1)"
print("All claims of lesson 1 hold.")
