"""Hand-written mutants of the core: small plausible bugs that the test suite must catch.

Each mutant replaces one exact snippet of one file in a temporary copy of the repository and
runs only the tests that should catch it there (``python -m pytest`` from the copy, so the copy
is what gets imported, not the editable install). A mutant is *killed* when those tests fail.

    python tests/mutants.py              every mutant (``make mutants``)
    python tests/mutants.py ID ...       only these
    python tests/mutants.py --list       the table of mutants

Exit status 1 when a mutant survives, when a mutant's old snippet is not found exactly once in
its file (a refactor moved the code: update the row, so no mutant silently tests nothing), or
when the unmutated copy fails its tests. Not part of ``make test``: it takes minutes.
New code adds mutants of its own here.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("sim", "models", "experiments", "plots", "tests", "docs", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache")


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str              # relative to the repository
    old: str               # exact text, found exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, or "-k EXPR"
    bug: str               # what the mutant plants, in a few words


M = "tests/test_methods.py"
S = "tests/test_server.py"
A = "tests/test_adversaries.py"
B = "tests/test_baselines.py"
K = "tests/test_kernels.py"
TRANSFORMER_GRADS = "tests/test_transformer.py::test_every_tensor_matches_finite_differences"
LION_ORDER = f"{M}::test_lion_family_takes_the_sign_before_updating_the_momentum"

MUTANTS = [
    Mutant("lion-momentum-first", "sim/methods/lion.py",
           '    c = lion_direction(m, grads, hp["betas"][0])\n'
           '    ema_(m, grads, hp["betas"][1])\n',
           '    ema_(m, grads, hp["betas"][1])\n'
           '    c = lion_direction(m, grads, hp["betas"][0])\n',
           (LION_ORDER,), "Lion updates its momentum before taking the sign"),
    Mutant("dlion-momentum-first", "sim/methods/lion.py",
           "            np.multiply(mj, b1, out=cj)\n"
           "            np.multiply(gj, 1 - b1, out=tj)\n"
           "            np.add(cj, tj, out=cj)\n"
           "            np.multiply(mj, b2, out=mj)  # after the sign's input was formed: the "
           "reference order\n"
           "            np.multiply(gj, 1 - b2, out=tj)\n"
           "            np.add(mj, tj, out=mj)\n",
           "            np.multiply(mj, b2, out=mj)\n"
           "            np.multiply(gj, 1 - b2, out=tj)\n"
           "            np.add(mj, tj, out=mj)\n"
           "            np.multiply(mj, b1, out=cj)\n"
           "            np.multiply(gj, 1 - b1, out=tj)\n"
           "            np.add(cj, tj, out=cj)\n",
           (LION_ORDER, f"{M}::test_dlion_workers_keep_their_own_momentum", K),
           "D-Lion's numpy worker kernel updates the momentum before taking the sign"),
    Mutant("compiled-worker-decays-with-b1", "sim/kernels.py",
           "                    mj[t] = mv * b2 + gv * f2\n",
           "                    mj[t] = mv * b1 + gv * f1\n",
           (K,), "the compiled worker kernel decays the momentum with b1"),
    Mutant("compiled-worker-tail-flags-kept", "sim/kernels.py",
           "                    pos[t] = 0\n                    nil[t] = 0\n",
           "                    pass\n",
           (K,), "the compiled worker kernel packs stale flags into a partial last byte"),
    Mutant("compiled-worker-bit-order", "sim/kernels.py",
           "_MSB_FIRST = np.uint64(0x8040201008040201)",
           "_MSB_FIRST = np.uint64(0x0102040810204080)",
           (K,), "the compiled worker kernel packs each byte least significant bit first"),
    Mutant("harley-seal-carry", "sim/wire/bitslice.py",
           "np.bitwise_and(t, plane, out=u)", "np.bitwise_and(x, plane, out=u)",
           (K,), "the numpy bit-sliced counter's full adder loses a carry"),
    Mutant("compiled-count-carry", "sim/kernels.py",
           "carry[t] = (x & y) | (s & p)", "carry[t] = x & y",
           (K,), "the compiled bit-sliced counter's full adder loses a carry"),
    Mutant("compare-ignores-higher-bits", "sim/wire/bitslice.py",
           "            greater |= equal & plane\n", "            greater |= plane\n",
           (K,), "a count is called greater at any 1 where k has a 0, whatever the bits above"),
    Mutant("odd-vote-ties", "sim/methods/base.py",
           "        if n % 2:\n            equal[:] = 0\n", "",
           (K,), "an odd number of votes is tied when the ones are one short of half"),
    Mutant("glion-momentum-first", "sim/methods/lion.py",
           '    c = lion_direction(state["m"], g, hp["betas"][0])\n'
           '    ema_(state["m"], g, hp["betas"][1])\n',
           '    ema_(state["m"], g, hp["betas"][1])\n'
           '    c = lion_direction(state["m"], g, hp["betas"][0])\n',
           (LION_ORDER,), "G-Lion updates its momentum before taking the sign"),
    Mutant("lion-betas-swapped", "sim/methods/lion.py",
           '    c = lion_direction(m, grads, hp["betas"][0])\n'
           '    ema_(m, grads, hp["betas"][1])\n',
           '    c = lion_direction(m, grads, hp["betas"][1])\n'
           '    ema_(m, grads, hp["betas"][0])\n',
           (LION_ORDER,), "Lion interpolates with b2 and decays the momentum with b1"),
    Mutant("decay-not-scaled-by-lr", "sim/methods/base.py",
           "    step = np.multiply(x, wd, dtype=x.dtype)\n"
           "    step += direction\n"
           "    step *= x.dtype.type(lr)\n",
           "    step = np.multiply(direction, lr, dtype=x.dtype)\n"
           "    step += np.multiply(x, wd, dtype=x.dtype)\n",
           (M,), "decoupled weight decay not multiplied by the learning rate"),
    Mutant("adamw-no-bias-correction", "sim/methods/adamw.py",
           '    m_hat = state["m"] / (1 - b1**t)\n    v_hat = state["v"] / (1 - b2**t)\n',
           '    m_hat = state["m"]\n    v_hat = state["v"]\n',
           (f"{M}::test_adamw_two_steps_by_hand",), "AdamW without bias correction"),
    Mutant("adamw-eps-inside-sqrt", "sim/methods/adamw.py",
           'm_hat / (np.sqrt(v_hat) + hp["eps"])', 'm_hat / np.sqrt(v_hat + hp["eps"])',
           (f"{M}::test_adamw_two_steps_by_hand",), "AdamW's eps inside the square root"),
    Mutant("tie-biased", "sim/methods/base.py",
           "    return rng.random(count) < 0.5\n",
           "    return rng.random(count) < 0.55\n",
           (f"{M}::test_mavo_tie_rules_on_an_even_split",),
           "a random tie goes to +1 with probability 0.55"),
    Mutant("avg-not-divided-by-n", "sim/methods/lion.py",
           ".decode(reply, x.size).astype(x.dtype) / x.dtype.type(n)",
           ".decode(reply, x.size).astype(x.dtype)",
           (f"{M}::test_avg_reply_is_the_mean_sign",), "D-Lion Avg steps by S instead of S/N"),
    Mutant("sparsifier-no-error-feedback", "sim/methods/sparsifiers.py",
           '    ef = hp.get("error_feedback", True)\n'
           '    c = compensate(state["memory"], grads) if ef else grads\n',
           '    ef = hp.get("error_feedback", True)\n    c = grads\n',
           (f"{B}::test_sparsifier_sends_the_residual_it_kept",),
           "top-k and GradDrop forget their residual"),
    Mutant("randomk-no-error-feedback", "sim/methods/sparsifiers.py",
           '    ef = hp["error_feedback"]\n'
           '    c = compensate(state["memory"], grads) if ef else grads\n',
           '    ef = hp["error_feedback"]\n    c = grads\n',
           (f"{B}::test_randomk_sends_every_gradient_an_entry_has_seen",),
           "random-k forgets its residual"),
    Mutant("efsignsgd-no-error-feedback", "sim/methods/signsgd.py",
           '    c = compensate(state["memory"], m)\n', "    c = m\n",
           (f"{B}::test_efsignsgd_sends_the_residual_it_kept",),
           "EF-signSGD forgets its residual"),
    Mutant("powersgd-no-error-feedback", "sim/methods/powersgd.py",
           '    m = compensate(state["memory"], grads) if hp["error_feedback"] else grads\n',
           "    m = grads\n",
           (f"{B}::test_powersgd_compresses_the_gradient_plus_what_it_missed",),
           "PowerSGD forgets what the low-rank step missed"),
    Mutant("dgc-gradient-accumulated", "sim/methods/dgc.py",
           "        u *= mu\n        u += g\n        v += u\n",
           "        u *= mu\n        u += g\n        v += g\n",
           (f"{B}::test_dgc_accumulates_the_velocity_and_masks_what_it_sent",),
           "DGC accumulates the gradient instead of the velocity (no momentum correction)"),
    Mutant("dgc-no-momentum-masking", "sim/methods/dgc.py",
           '        state["u"][mask & ~state["dense"]] = 0', '        pass',
           (f"{B}::test_dgc_accumulates_the_velocity_and_masks_what_it_sent",),
           "DGC keeps the momentum of entries it sent"),
    Mutant("dgc-memory-keeps-sent", "sim/methods/dgc.py",
           '    payloads = sparse_send(state, "v", v, mask, hp)\n',
           '    payloads = sparse_send(state, None, v, mask, hp)\n',
           (f"{B}::test_dgc_accumulates_the_velocity_and_masks_what_it_sent",),
           "DGC's accumulator is not cleared where it sent"),
    Mutant("onebit-no-worker-error-feedback", "sim/methods/onebit_adam.py",
           '    state["worker_error"] = c - sent.astype(c.dtype)\n',
           '    state["worker_error"] = np.zeros_like(c)\n',
           (f"{B}::test_onebit_adam_matches_a_reference_of_its_compressed_phase",),
           "1-bit Adam without the workers' error feedback"),
    Mutant("onebit-no-server-error-feedback", "sim/methods/onebit_adam.py",
           '    state["server_error"] = z - server_sent.astype(z.dtype)\n',
           '    state["server_error"] = np.zeros_like(z)\n',
           (f"{B}::test_onebit_adam_matches_a_reference_of_its_compressed_phase",),
           "1-bit Adam without the servers' error feedback"),
    Mutant("onebit-l1-scale", "sim/methods/onebit_adam.py",
           "    scales = np.sqrt(seg.sum(z.astype(np.float64) ** 2) / seg.sizes)\n",
           "    scales = seg.sum(np.abs(z.astype(np.float64))) / seg.sizes\n",
           (f"{B}::test_onebit_adam_matches_a_reference_of_its_compressed_phase",),
           "1-bit Adam scales its signs by the mean |value| instead of the RMS"),
    Mutant("sum-codec-level-count", "sim/wire/codecs.py",
           "        return LevelCodec(int(self.n_workers) + 1)\n",
           "        return LevelCodec(max(2, int(self.n_workers)))\n",
           ("tests/test_codecs.py",), "the sum of N signs sent with N levels instead of N+1"),
    Mutant("terngrad-level-count", "sim/wire/codecs.py",
           "        return LevelCodec(2 * self.n_workers + 1).encode(np.asarray(total, "
           "dtype=np.int64)\n",
           "        return LevelCodec(2 * self.n_workers).encode(np.asarray(total, "
           "dtype=np.int64)\n",
           (f"{B}::test_bits_per_parameter_match_the_design_table",),
           "TernGrad's reply sent with 2N levels instead of 2N+1"),
    Mutant("network-no-latency", "sim/net/network.py",
           "start = self.env.timeout(delay + latency + self.overhead)",
           "start = self.env.timeout(delay + self.overhead)",
           ("tests/test_network.py",), "a message never pays its path latency"),
    Mutant("max-min-ignores-a-link", "sim/net/sharing.py",
           "count = np.bincount(sub.ravel(), minlength=left.size)",
           "count = np.bincount(sub[:, 0], minlength=left.size)",
           ("tests/test_network.py",), "max-min sharing sees only the first link of a route"),
    Mutant("tcp-window-one-way", "sim/net/transport.py",
           "self.window_bits / (2 * latency)", "self.window_bits / latency",
           ("tests/test_network.py::test_tcp_window_caps_a_flow",),
           "the TCP window bound uses the one-way latency instead of the round trip"),
    Mutant("chunk-off-by-one", "sim/net/collectives.py",
           "(np.arange(k)[None, :] < bits[:, None] % k)",
           "(np.arange(k)[None, :] <= bits[:, None] % k)",
           ("tests/test_collectives.py",), "a message cut in k pieces gets one bit too many"),
    Mutant("save-non-atomic", "experiments/results.py",
           '    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", '
           'suffix=".tmp")\n'
           "    try:\n"
           "        os.fchmod(fd, 0o666 & ~_umask())\n"
           "        with os.fdopen(fd, mode) as fh:\n"
           "            fh.write(content)\n"
           "        os.replace(tmp, path)\n"
           "    except BaseException:\n"
           "        os.unlink(tmp)\n"
           "        raise\n",
           "    with open(path, mode) as fh:\n        fh.write(content)\n",
           ("tests/test_experiments.py", "-k", "atomic or cut"),
           "results written in place instead of to a temporary file and renamed"),
    Mutant("summary-written-first", "experiments/results.py",
           '        _write_atomic(path / "spec.toml", to_toml(self.summary["spec"]))\n',
           '        _write_atomic(path / "summary.json", json.dumps(_json_safe(self.summary)))\n'
           '        _write_atomic(path / "spec.toml", to_toml(self.summary["spec"]))\n',
           ("tests/test_experiments.py", "-k", "cut"),
           "summary.json written before the other files (and again after them)"),
    Mutant("stale-summary-kept", "experiments/results.py",
           '    for stale in ("summary.json", "trace.csv"):\n',
           '    for stale in ("trace.csv",):\n',
           ("tests/test_experiments.py", "-k", "cut"),
           "saving over a run keeps its summary.json until the new one is written"),
    Mutant("table-non-atomic", "experiments/table.py",
           "    _write_atomic(path / TABLE, text.getvalue())\n",
           "    (path / TABLE).write_text(text.getvalue())\n",
           ("tests/test_sweep.py", "-k", "cut"), "runs.csv written in place"),
    Mutant("resume-reruns-everything", "experiments/sweep.py",
           '    todo = [r for r in records if not is_complete(r["dir"])]\n',
           "    todo = list(records)\n",
           ("tests/test_sweep.py", "-k", "resume or cut"),
           "a resumed sweep runs its finished points again"),
    # issue 10: the clock decides what is aggregated
    Mutant("first-k-waits-for-one-more", "sim/server.py",
           'self._count >= self.policy.k', 'self._count > self.policy.k',
           (f"{S}::test_a_policy_that_excludes_the_slow_worker_votes_without_it",),
           "first_k closes after k + 1 messages"),
    Mutant("avg-divides-by-all-workers", "sim/methods/lion.py",
           '    n = state["m"].shape[0] if arrived is None else int(arrived.sum())\n',
           '    n = state["m"].shape[0]\n',
           (f"{S}::test_avg_divides_by_the_messages_that_arrived",),
           "D-Lion Avg divides by N although fewer messages arrived"),
    Mutant("abandoned-worker-keeps-its-update", "sim/step.py",
           "    # a worker that did not finish computing (it gave the step up, or was down) "
           "changed nothing\n    restore_rows(state, before, ~computed)\n",
           "    pass\n",
           (f"{S}::test_an_abandoned_worker_keeps_its_momentum",),
           "a worker that gave its step up keeps that step's state update"),
    Mutant("discarded-message-forgotten", "sim/methods/base.py",
           '        state[key][rows] = state["compensated"][rows]\n',
           '        state[key][rows] = state[key][rows]\n',
           (f"{S}::test_a_discarded_message_stays_in_its_workers_memory",),
           "error feedback loses a message the server discarded"),
    Mutant("first-round-reduced-over-all", "sim/methods/terngrad.py",
           "    shared = (scales if arrived is None else scales[arrived]).max(axis=0)\n",
           "    shared = scales.max(axis=0)\n",
           (f"{S}::test_two_of_three_is_a_run_of_those_two",),
           "TernGrad's shared scale includes a worker missing from the first round"),
    Mutant("retransmitted-at-once", "sim/faults.py",
           "                    attempt(faults.model.rto, lambda: faults.crash_at[w] > env.now, "
           "retry)\n",
           "                    attempt(0.0, lambda: faults.crash_at[w] > env.now, retry)\n",
           ("tests/test_faults.py::test_a_lost_message_costs_its_transfer_and_the_"
            "retransmission_timeout",),
           "a lost message is sent again without waiting for the timeout"),
    # issue 12: the TCP transport
    Mutant("idle-restarts-from-the-initial-window", "sim/net/transport.py",
           "        halved = np.floor(cwnd / 2.0 ** np.minimum(halvings, 64))\n",
           "        halved = np.where(halvings > 0, 0.0, cwnd)\n",
           ("tests/test_transport.py::test_window_kept_between_messages_and_halved_once_per_"
            "idle_rto",),
           "an idle connection restarts from the initial window (the issue's model, not Linux)"),
    Mutant("no-ethernet-framing", "sim/net/transport.py",
           "ETHERNET_OVERHEAD = 38 ", "ETHERNET_OVERHEAD = 0 ",
           ("tests/test_transport.py::test_framing_from_the_mtu",
            "tests/test_validation.py"),
           "TCP pays no Ethernet header, FCS, preamble or gap per frame"),
    # issue 13: baselines as their references run them
    Mutant("onebit-adam-unmasked", "sim/methods/onebit_adam.py",
           '        m[:] = momentum[state["position"]] * state["mask"]  # the variance stays frozen\n',
           '        m[:] = momentum[state["position"]]\n',
           ("tests/test_baseline_references.py", "-k", "onebit"),
           "1-bit Adam moves coordinates whose second moment was zero at the freeze"),
    # issue 11: adversaries and robust aggregation
    Mutant("flip-sends-the-honest-message", "sim/adversaries.py",
           "            out[self.mask] = -base\n", "            out[self.mask] = base\n",
           (f"{A}::test_one_flipping_worker_in_a_majority_vote_by_hand",),
           "a flipping adversary sends what an honest worker would"),
    Mutant("collusion-ignored", "sim/adversaries.py",
           "        if self.collude and honest.shape[0]:\n", "        if False:\n",
           (f"{A}::test_colluding_adversaries_send_one_vector_against_the_honest_mean",),
           "colluding adversaries each attack with their own gradient"),
    Mutant("median-is-the-mean", "sim/methods/robust.py",
           '    if rule == "median":\n        return np.median(values, axis=0).astype(np.float32)\n',
           '    if rule == "median":\n        return values.mean(axis=0, dtype=np.float32)\n',
           (f"{A}::test_median_trimmed_mean_and_krum_against_their_definitions",),
           "the coordinate-wise median is the mean"),
    Mutant("trim-rounds-up", "sim/methods/robust.py",
           "    cut = count_of(trim, m)\n", "    cut = count_of(trim, m, round_up=True)\n",
           (f"{A}::test_median_trimmed_mean_and_krum_against_their_definitions",),
           "the trimmed mean cuts one value too many at each end"),
    Mutant("krum-one-neighbour-too-many", "sim/methods/robust.py",
           "    nearest = values.shape[0] - f - 2\n", "    nearest = values.shape[0] - f - 1\n",
           (f"{A}::test_median_trimmed_mean_and_krum_against_their_definitions",),
           "Krum scores each gradient over N - f - 1 neighbours"),
    # issue 17: the transformer's hand-written backward pass, against finite differences
    Mutant("layer-norm-backward-keeps-scale", "models/transformer.py",
           "    return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)\n"
           "                   - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))\n",
           "    return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True))\n",
           (TRANSFORMER_GRADS,),
           "layer norm's input gradient forgets that the scale is normalised"),
    Mutant("attention-softmax-uncentred", "models/transformer.py",
           "        dscores -= (dscores * weights).sum(axis=-1, keepdims=True)\n", "",
           (TRANSFORMER_GRADS,), "attention's softmax backward drops the Jacobian's outer term"),
    Mutant("attention-key-unscaled", "models/transformer.py",
           "        dqkv[0] *= 1.0 / np.sqrt(dh)\n", "",
           (TRANSFORMER_GRADS,), "the query gradient misses the 1/sqrt(head width) of the scores"),
]

# An obviously broken copy (every d-vector of signs would take no bytes); if the tests pass
# on it, they are not importing the copy.
CANARY = Mutant("canary", "sim/wire/codecs.py",
                "        return 8 * ((_check_d(d) + 7) // 8)\n", "        return 0\n",
                ("tests/test_codecs.py",), "sanity check: the copy is what the tests import")


def _occurrences(mutant: Mutant) -> int:
    return (ROOT / mutant.path).read_text().count(mutant.old)


def _copy(into: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=IGNORED)
        else:
            shutil.copy2(source, into / name)


def _pytest(copy: Path, tests, timeout: float) -> tuple[str, str]:
    """Run pytest in ``copy`` on ``tests``: ("passed" | "failed" | "timeout" | "error", detail)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLION_SIM_")}
    env.update(PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider",
               *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result in {timeout:.0f} s"
    out = done.stdout + done.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, flags=re.M)
    if done.returncode == 0:
        return "passed", "its tests pass"
    if done.returncode == 1 and failed:
        return "failed", failed[0]
    return "error", f"pytest exit {done.returncode}: {out.strip()[-600:]}"


def _run(mutant: Mutant | None, tests, timeout: float) -> tuple[str, str, float]:
    """Copy the repository, apply ``mutant`` (None: unchanged), run ``tests`` there."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dlion-mutant-") as tmp:
        copy = Path(tmp)
        _copy(copy)
        if mutant is not None:
            target = copy / mutant.path
            target.write_text(target.read_text().replace(mutant.old, mutant.new))
        outcome, detail = _pytest(copy, tests, timeout)
    return outcome, detail, time.perf_counter() - start


def _imports_the_copy(timeout: float) -> str | None:
    """None when a copy's own packages are what Python imports there, else the reason."""
    with tempfile.TemporaryDirectory(prefix="dlion-mutant-") as tmp:
        copy = Path(tmp)
        _copy(copy)
        env = {**os.environ, "PYTHONPATH": str(copy)}
        probe = subprocess.run([sys.executable, "-c", "import sim; print(sim.__file__)"],
                               cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        where = probe.stdout.strip()
        if not where.startswith(str(copy)):
            return f"the copy imports sim from {where or probe.stderr.strip()}"
    outcome, detail, _ = _run(CANARY, CANARY.tests, timeout)
    if outcome != "failed":
        return f"the canary mutant was not detected ({outcome}: {detail})"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ids", nargs="*", help="mutant ids (default: all)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="mutants run at once (default: 2)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds allowed for one mutant's tests (default: 600)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    args = parser.parse_args(argv)

    known = {m.id: m for m in MUTANTS}
    unknown = [i for i in args.ids if i not in known]
    if unknown:
        print(f"mutants: unknown id {', '.join(unknown)}; known: {', '.join(known)}",
              file=sys.stderr)
        return 2
    chosen = [known[i] for i in args.ids] if args.ids else MUTANTS
    if args.list:
        for m in chosen:
            print(f"{m.id:34s} {m.path:24s} {m.bug}")
        return 0

    invalid = {m.id: _occurrences(m) for m in chosen if _occurrences(m) != 1}
    for mutant_id, count in invalid.items():
        print(f"INVALID  {mutant_id}: its old snippet occurs {count} times in "
              f"{known[mutant_id].path} (must be exactly once); update the row",
              file=sys.stderr)
    runnable = [m for m in chosen if m.id not in invalid]

    problem = _imports_the_copy(args.timeout)
    if problem:
        print(f"mutants: {problem}", file=sys.stderr)
        return 1
    print("copy: its own packages are imported, and the canary mutant is detected")
    selections = list(dict.fromkeys(m.tests for m in runnable))
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        unmutated = dict(zip(selections, pool.map(
            lambda tests: _run(None, tests, args.timeout), selections)))
        broken = {tests: r for tests, r in unmutated.items() if r[0] != "passed"}
        for tests, (outcome, detail, _) in broken.items():
            print(f"mutants: without a mutant, {' '.join(tests)} gives {outcome}: {detail}",
                  file=sys.stderr)
        if broken:
            return 1
        print(f"unmutated copy: all {len(selections)} test selections pass")
        print(f"{'mutant':34s} {'result':8s} {'s':>4s}  killed by")
        survived = 0
        runs = pool.map(lambda m: (m, _run(m, m.tests, args.timeout)), runnable)
        for m, (outcome, detail, seconds) in runs:
            result = {"failed": "killed", "timeout": "killed", "passed": "SURVIVED"}.get(
                outcome, "ERROR")
            survived += result != "killed"
            shown = detail if result != "SURVIVED" else f"{m.bug} ({detail})"
            print(f"{m.id:34s} {result:8s} {seconds:4.0f}  {shown}", flush=True)
    print(f"{len(runnable) - survived} of {len(chosen)} mutants killed; {survived} survived or "
          f"errored; {len(invalid)} invalid")
    return 1 if survived or invalid else 0


if __name__ == "__main__":
    sys.exit(main())
