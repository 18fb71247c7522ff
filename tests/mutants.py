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
F = "tests/test_faults.py"
N = "tests/test_network.py"
T = "tests/test_transport.py"
O = "tests/test_output.py"
X = "tests/test_transformer.py"
EXPLORE = "tests/test_explore.py"
EXPLORE_PAGE = "tests/test_explore_page.py"
K = "tests/test_kernels.py"
V = "tests/test_versioned.py"
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
           "_avg_codec(n, hp).decode(reply, d).astype(dtype) / dtype.type(n)",
           "_avg_codec(n, hp).decode(reply, d).astype(dtype)",
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
           '        state["u"] = np.where(mask & ~state["dense"], u.dtype.type(0), u)\n',
           '        state["u"] = u\n',
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
           "        latency = self._path_latency(src, dst)\n        done = self.env.event()\n"
           "        start = self.env.timeout(delay + latency + self.overhead)",
           "        latency = self._path_latency(src, dst)\n        done = self.env.event()\n"
           "        start = self.env.timeout(delay + self.overhead)",
           ("tests/test_network.py",), "a message never pays its path latency"),
    Mutant("max-min-ignores-a-link", "sim/net/sharing.py",
           "        load = np.bincount(link[live], weights=weight[live], minlength=left.size)\n",
           "        load = np.bincount(link[live][::2], weights=weight[live][::2], "
           "minlength=left.size)\n",
           ("tests/test_network.py",), "max-min sharing counts only every other link entry (a message's receiving link is ignored)"),
    Mutant("tcp-window-one-way", "sim/net/transport.py",
           "np.minimum(window, limit) / (2 * latency)", "np.minimum(window, limit) / latency",
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
           '    for stale in ("summary.json", "trace.csv", "trace.json"):\n',
           '    for stale in ("trace.csv", "trace.json"):\n',
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
           "            out[self.mask] = -base if negate else base\n",
           "            out[self.mask] = base\n",
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
    # issue 22: defects an audit found
    Mutant("rejoin-decided-after-encode", "sim/step.py",
           "        cluster.open(step)  # an all-down wait decides who rejoins: before anyone "
           "encodes\n", "",
           ("tests/test_faults.py::test_workers_back_after_all_were_down_rejoin_cold",),
           "workers back after an all-down wait keep their old optimizer state"),
    Mutant("powersgd-memory-of-every-worker", "sim/methods/powersgd.py",
           "        took_part = slice(None) if arrived is None else arrived\n",
           "        took_part = slice(None)\n",
           (f"{S}::test_powersgd_memory_of_a_worker_that_gave_steps_up_is_untouched",),
           "PowerSGD overwrites the memory of a worker that gave the step up"),
    Mutant("dgc-discard-keeps-the-mask", "sim/methods/dgc.py",
           '    state["u"][rows] = state["unmasked"][rows]\n', "",
           (f"{S}::test_dgc_discarded_message_keeps_its_momentum_as_if_nothing_was_sent",),
           "DGC keeps the momentum masked where a discarded message selected entries"),
    Mutant("dgc-clips-the-whole-gradient", "sim/methods/dgc.py",
           '"dense": dense, "segments": seg,', '"dense": dense, "segments": Segments.of(x.size),',
           (f"{B}::test_dgc_clips_each_tensor_on_its_own",),
           "DGC clips the whole gradient by one norm, not each tensor"),
    Mutant("flip-negated-twice", "sim/step.py",
           "negate=not flipping)", "negate=True)",
           (f"{A}::test_a_flipping_worker_sends_exactly_the_negated_honest_message",),
           "a method that negates its adversaries' messages is also fed -g"),
    Mutant("efsignsgd-flip-keeps-its-signs", "sim/methods/signsgd.py",
           "SignCodec.pack(c[flipped] < 0)", "SignCodec.pack(c[flipped] >= 0)",
           (f"{A}::test_a_flipping_worker_sends_exactly_the_negated_honest_message",),
           "an EF-signSGD adversary sends its honest signs"),
    Mutant("powersgd-flip-not-on-the-wire", "sim/methods/powersgd.py",
           "        message[flipped] *= -1\n", "        message[flipped] *= 1\n",
           (f"{A}::test_a_flipping_worker_sends_exactly_the_negated_honest_message",),
           "a PowerSGD adversary's message is its honest one"),
    Mutant("powersgd-flip-not-in-the-mean", "sim/methods/powersgd.py",
           "    p_sent = p_honest if flipped is None else np.where(flipped[:, None], -p_honest, "
           "p_honest)\n", "    p_sent = p_honest\n",
           (f"{A}::test_powersgd_projects_on_the_mean_of_the_p_its_adversaries_sent",),
           "PowerSGD reduces its adversaries' honest P, not the negated P they sent"),
    Mutant("onebit-flip-keeps-its-signs", "sim/methods/onebit_adam.py",
           "SignCodec.pack(c[flipped] < 0)", "SignCodec.pack(c[flipped] >= 0)",
           (f"{A}::test_a_flipping_worker_sends_exactly_the_negated_honest_message",),
           "a 1-bit Adam adversary sends its honest compressed momentum"),
    Mutant("onebit-flip-serves-honestly", "sim/methods/onebit_adam.py",
           "SignCodec.pack(z[flipped] < 0)", "SignCodec.pack(z[flipped] >= 0)",
           (f"{A}::test_a_flipping_chunk_server_sends_the_negation_of_its_honest_chunk",),
           "a 1-bit Adam adversary serves its chunk honestly"),
    Mutant("receiving-worker-not-abandoned", "sim/cluster.py",
           "        abandoned = self._targets & ~record.computed\n",
           "        abandoned = ~record.computed & ~np.isnan(record.start)\n",
           (f"{S}::test_a_worker_still_receiving_at_the_close_gives_the_step_up_and_replies_"
            "queue",),
           "a worker still receiving the previous reply at the close is not counted"),
    Mutant("replies-share-the-link", "sim/cluster.py",
           "to=targets, behind=behind)", "to=targets)",
           (f"{S}::test_a_worker_still_receiving_at_the_close_gives_the_step_up_and_replies_"
            "queue",),
           "a reply to a worker shares its link with the one still in flight"),
    Mutant("behind-ignored", "sim/net/network.py",
           "        if behind is not None and not behind.processed:\n", "        if False:\n",
           ("tests/test_network.py::test_a_message_behind_another_flows_once_that_one_has_"
            "arrived",),
           "a message queued behind another flows at once"),
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
    # issue 22: the command line and the spec
    Mutant("stopped-run-discarded", "experiments/run.py",
           "            if keep_when_stopped:\n", "            if False:\n",
           ("tests/test_interrupt.py::test_a_stopped_run_returns_what_it_computed",),
           "a run stopped by Ctrl-C raises instead of keeping the steps it computed"),
    Mutant("objective-choices-unchecked", "experiments/named.py",
           "        if pname in choices:\n", "        if False:\n",
           ("tests/test_transformer.py::"
            "test_a_data_set_the_objective_does_not_take_is_named_before_any_install_hint",),
           "an objective's data set is checked only when its data is loaded"),
    Mutant("sweep-named-before-a-typo", "experiments/cli.py",
           "        for point in expand(raw):  # a typo anywhere is named first: it would stop the "
           "sweep\n            resolve(point)\n", "",
           ("tests/test_spec.py::test_bad_spec_exits_2_with_one_line_naming_the_key",),
           "run reports the [sweep] table before a typo elsewhere"),
    Mutant("folder-hides-the-bundled-spec", "experiments/spec.py",
           "    if path.is_file():\n        return path\n",
           "    if path.exists():\n        return path\n",
           ("tests/test_discover.py::test_a_folder_named_like_a_bundled_spec_does_not_hide_it",),
           "a folder in the working directory named like a bundled spec hides it"),
    Mutant("default-collective-left-empty", "experiments/spec.py",
           "                                     or methods.METHODS[spec[\"method\"][\"name\"]]"
           ".collectives[0])\n",
           "                                     or None)\n",
           ("tests/test_spec.py::"
            "test_the_resolved_spec_names_the_collective_also_when_it_is_the_default",),
           "the resolved spec leaves the method's default collective unnamed"),
    Mutant("timeline-one-axis", "plots/timeline.py",
           "        ax.set_xlim(0, length / scale)\n", "        ax.set_xlim(0, max(lengths) / scale)\n",
           ("tests/test_plots.py::"
            "test_timeline_panels_each_span_their_own_window_and_say_how_much_shorter",),
           "every timeline panel spans the longest panel's window (a fast method's steps are slivers)"),
    # issue 22: plausible one-line bugs of the wave-2 code, each caught by a test of its own
    Mutant("deadline-timed-from-the-wait", "sim/server.py",
           "            timer = env.timeout(max(0.0, opening + policy.deadline - env.now))\n",
           "            timer = env.timeout(policy.deadline)\n",
           (f"{S}::test_the_deadline_counts_from_the_opening_which_the_servers_work_delays",),
           "the deadline runs from when the server starts waiting, not from the step's opening"),
    Mutant("forgotten-worker-counted-again", "sim/server.py",
           "        self.expected[w] = False\n        if not self.arrived[w]:\n"
           "            self._missing -= 1\n",
           "        self.expected[w] = False\n        self._missing -= 1\n",
           (f"{F}::test_a_message_on_the_wire_when_its_sender_crashes_arrives_and_counts_once",),
           "a crash noticed after the worker's message arrived counts that message twice"),
    Mutant("forgotten-workers-message-counted", "sim/server.py",
           "        self._count += 1\n        if self.expected[w]:\n            self._missing -= 1\n",
           "        self._count += 1\n        self._missing -= 1\n",
           (f"{F}::test_a_message_on_the_wire_when_its_sender_crashes_arrives_and_counts_once",),
           "a message landing after its sender's crash was noticed counts as one more arrival"),
    Mutant("crash-step-never-recovers", "sim/faults.py",
           "            self.crash_at[hit] = now\n            self._set_recovery(hit)\n",
           "            self.crash_at[hit] = now\n",
           (f"{F}::test_a_worker_crashed_at_a_step_is_down_for_recover_after_and_rejoins_at_the_"
            "next_opening",),
           "a worker crashed by step is never scheduled to recover"),
    Mutant("next-crash-from-the-opening", "sim/faults.py",
           "self._draw_crash(self.recover_at[back], int(back.sum()))",
           "self._draw_crash(now, int(back.sum()))",
           (f"{F}::test_random_crashes_alternate_with_their_down_time",),
           "a recovered worker's next random crash is drawn from the opening, not its recovery"),
    Mutant("crashed-worker-retransmits", "sim/faults.py",
           "                    attempt(faults.model.rto, lambda: faults.crash_at[w] > env.now, "
           "retry)\n",
           "                    attempt(faults.model.rto, None, retry)\n",
           (f"{F}::test_a_worker_that_crashes_before_its_retransmission_never_sends_it",),
           "a worker that crashed after a lost attempt still sends the retransmission"),
    Mutant("retry-row-from-the-compute", "sim/faults.py",
           "                    attempt(faults.model.rto, lambda: faults.crash_at[w] > env.now, "
           "retry)\n",
           "                    attempt(faults.model.rto, lambda: faults.crash_at[w] > env.now, "
           "computed_at)\n",
           (f"{F}::test_each_lost_attempt_is_one_row_from_its_start_to_the_next",),
           "a lost retransmission's timeline row starts when the worker computed"),
    Mutant("lost-row-ends-with-the-attempt", "sim/faults.py",
           "                on_lost(w, begin, t if drop else retry, bits)\n",
           "                on_lost(w, begin, t, bits)\n",
           (f"{F}::test_each_lost_attempt_is_one_row_from_its_start_to_the_next",),
           "a retransmitted loss's row ends with the lost attempt, not at the retransmission"),
    Mutant("on-the-wire-dropped-at-a-crash", "sim/faults.py",
           "            if faults is not None and faults.crash_at[w] <= computed_at:\n",
           "            if faults is not None and faults.crash_at[w] <= env.now:\n",
           (f"{F}::test_a_message_on_the_wire_when_its_sender_crashes_arrives_and_counts_once",),
           "a message is lost when its sender crashes during its latency, after computing"),
    Mutant("reply-to-the-workers-up", "sim/cluster.py",
           "        self._targets = ~self.faults.detected(opening)\n",
           "        self._targets = ~self.faults.down(opening)\n",
           (f"{F}::test_a_worker_crashed_at_a_step_is_down_for_recover_after_and_rejoins_at_the_"
            "next_opening",),
           "the server knows of a crash at once: it neither replies to nor waits for the worker"),
    Mutant("crashed-worker-counted-abandoned", "sim/cluster.py",
           "            abandoned &= self.faults.crash_at > closed_at\n", "",
           (f"{F}::test_participation_columns_by_hand",),
           "a worker that crashed while computing counts as having given its step up"),
    Mutant("reply-bits-for-every-worker", "sim/record.py",
           "        return up, float(record.down * record.receivers.mean())\n",
           "        return up, float(record.down)\n",
           (f"{F}::test_reply_bits_count_the_workers_the_reply_goes_to",),
           "reply bits counted for every worker, not only those the reply goes to"),
    Mutant("abandoned-bits-counted", "sim/cluster.py",
           "                senders = self._senders(record.ready, closed_at) if self.partial "
           "else True\n",
           "                senders = True\n",
           (f"{F}::test_reply_bits_count_the_workers_the_reply_goes_to",),
           "bits_up counts the messages of workers that never sent one"),
    Mutant("crash-after-computing-voids-the-computation", "sim/cluster.py",
           "            sent &= self.faults.crash_at > np.where(sent, ready, 0.0)\n",
           "            sent &= self.faults.crash_at > closed_at\n",
           (f"{F}::test_a_message_on_the_wire_when_its_sender_crashes_arrives_and_counts_once",),
           "a worker that crashed after sending counts as not having computed"),
    Mutant("server-works-on-every-message", "sim/cluster.py",
           "            sent = int(up[expected].sum()) if self.partial else int(up.sum())\n",
           "            sent = int(up.sum())\n",
           (f"{S}::test_the_deadline_counts_from_the_opening_which_the_servers_work_delays",),
           "the server's time is charged for messages it never aggregated"),
    Mutant("down-row-past-the-recovery", "sim/cluster.py",
           "                end = min(self.faults.recover_at[w], record.agg_end)\n",
           "                end = record.agg_end\n",
           (f"{F}::test_a_worker_crashed_at_a_step_is_down_for_recover_after_and_rejoins_at_the_"
            "next_opening",),
           "a down row runs to the step's end although the worker recovered before"),
    Mutant("down-row-from-the-crash", "sim/cluster.py",
           "                begin = max(record.opening, self.faults.crash_at[w])\n",
           "                begin = self.faults.crash_at[w]\n",
           (f"{F}::test_a_worker_crashed_at_a_step_is_down_for_recover_after_and_rejoins_at_the_"
            "next_opening",),
           "every step's down row starts at the crash, so the rows overlap"),
    Mutant("discarded-memory-to-a-worker-that-gave-up", "sim/step.py",
           "        state = method.discard(state, computed & ~arrived)\n",
           "        state = method.discard(state, ~arrived)\n",
           (f"{S}::test_a_worker_that_never_finishes_computing_keeps_its_initial_state",),
           "a discarded message's memory is given to a worker that did not compute"),
    Mutant("late-message-aggregated", "sim/step.py",
           "    received = select(payloads, arrived)\n",
           "    received = select(payloads, computed)\n",
           (f"{S}::test_a_late_message_is_left_out_of_the_update",),
           "a message that arrived after the close is aggregated"),
    Mutant("empty-step-keeps-abandoned-updates", "sim/step.py",
           "        restore_rows(state, before, ~computed)\n        cluster.reply(0)\n",
           "        cluster.reply(0)\n",
           (f"{S}::test_a_step_in_which_nothing_arrives_changes_nothing",),
           "in a step where nothing arrived, workers that gave up keep that step's state"),
    Mutant("connection-queue-last-in-first-out", "sim/net/transport.py",
           "                released.append(queue.popleft())\n",
           "                released.append(queue.pop())\n",
           (f"{T}::test_messages_queued_on_one_connection_leave_first_in_first_out",),
           "messages queued on a busy TCP connection are served last in, first out"),
    Mutant("released-message-after-newcomers", "sim/net/network.py",
           "        self._pending[:0] = self._transport.close(finished, self._size[finished], now)\n",
           "        self._pending.extend(self._transport.close(finished, self._size[finished], "
           "now))\n",
           (f"{T}::test_a_message_that_waited_for_its_connection_goes_before_a_newcomer",),
           "a message that waited for its connection queues behind messages that just came"),
    Mutant("hystart-clamps-swapped", "sim/net/transport.py",
           "np.minimum(np.maximum(rtt / 8, HYSTART_MIN), HYSTART_MAX)",
           "np.maximum(np.minimum(rtt / 8, HYSTART_MIN), HYSTART_MAX)",
           (f"{T}::test_flows_sharing_a_link_leave_slow_start_with_the_queueing_hystart_tolerates",),
           "HyStart's clamp applied in the wrong order (always 16 ms)"),
    Mutant("hystart-quarter-rtt", "sim/net/transport.py",
           "np.minimum(np.maximum(rtt / 8, HYSTART_MIN), HYSTART_MAX)",
           "np.minimum(np.maximum(rtt / 4, HYSTART_MIN), HYSTART_MAX)",
           (f"{T}::test_flows_sharing_a_link_leave_slow_start_with_the_queueing_hystart_tolerates",),
           "HyStart tolerates a quarter of the RTT instead of an eighth"),
    Mutant("restart-halves-per-minimum-rto", "sim/net/transport.py",
           "np.ceil(idle / (rtt + self.rto_min)) - 1",
           "np.ceil(idle / self.rto_min) - 1",
           (f"{T}::test_the_restart_window_halves_as_linux_does",),
           "an idle connection halves its window once per minimum RTO, not per RTT + minimum"),
    Mutant("short-message-shrinks-the-window", "sim/net/transport.py",
           "        kept = np.maximum(start, grown)\n", "        kept = grown\n",
           (f"{T}::test_a_short_message_never_shrinks_the_window_it_used",),
           "a message too short to fill its window shrinks the connection's window"),
    Mutant("batch-reply-skips-the-rack-uplink", "sim/net/topology.py",
           "            out = out + self.rack_latency * (((rs >= 0) & crossing).astype(np.int64)\n"
           "                                             + ((rd >= 0) & crossing))\n",
           "            out = out + self.rack_latency * ((rs >= 0) & crossing).astype(np.int64)\n",
           (f"{N}::test_every_hop_pays_its_latency_in_both_directions",),
           "a rack's messages in (replies) skip the latency of its uplink (transfer_many)"),
    Mutant("batch-latency-of-the-source-twice", "sim/net/topology.py",
           "        out = self.host_latency[hs] + self.host_latency[hd]\n",
           "        out = self.host_latency[hs] + self.host_latency[hs]\n",
           (f"{N}::test_every_hop_pays_its_latency_in_both_directions",),
           "transfer_many charges the sender's latency for the receiver's link too"),
    Mutant("batch-without-overhead", "sim/net/network.py",
           "        start = (delay + latency + self.overhead).tolist()\n",
           "        start = (delay + latency).tolist()\n",
           (f"{N}::test_every_hop_pays_its_latency_in_both_directions",),
           "transfer_many skips the per-message software overhead"),
    Mutant("rack-downlink-is-the-uplink", "sim/net/topology.py",
           "np.where((rd >= 0) & crossing, self.rack_down0 + rd, self.pad)",
           "np.where((rd >= 0) & crossing, self.rack_up0 + rd, self.pad)",
           (f"{N}::test_a_rack_uplink_is_full_duplex",),
           "messages into a rack share its uplink's outgoing direction (not full duplex)"),
    Mutant("server-link-of-the-slowest-worker", "sim/net/topology.py",
           "server_bw = (nic_bw.max() if server_bandwidth",
           "server_bw = (nic_bw.min() if server_bandwidth",
           (f"{N}::test_the_server_link_defaults_to_the_fastest_worker_link",),
           "the server's link defaults to the slowest worker's, not the fastest's"),
    Mutant("interrupted-sweep-not-a-sweep", "experiments/output.py",
           "    return any((path / name).exists() for name in SWEEP_FILES)\n",
           "    return all((path / name).exists() for name in SWEEP_FILES)\n",
           (f"{O}::test_an_interrupted_sweep_directory_is_still_a_sweep",),
           "a sweep directory without its table (a killed sweep) is not recognised as a sweep"),
    Mutant("sweep-known-by-its-table", "experiments/output.py",
           'SWEEP_FILES = ("sweep.json", "runs.csv")', 'SWEEP_FILES = ("runs.csv",)',
           (f"{O}::test_an_interrupted_sweep_directory_is_still_a_sweep",),
           "only runs.csv marks a sweep directory"),
    Mutant("interrupt-counts-finished-as-cancelled", "experiments/sweep.py",
           '        cancelled = sum(r["status"] == "pending" for r in records)\n',
           "        cancelled = len(todo)\n",
           (f"{O}::test_an_interrupted_sweep_directory_is_still_a_sweep",),
           "an interrupted sweep reports its finished points as cancelled"),
    Mutant("manifest-forgets-earlier-points", "experiments/sweep.py",
           "    ordered = list(dict.fromkeys([*points, *_manifest_points(directory)]))\n",
           "    ordered = list(dict.fromkeys(points))\n",
           (f"{O}::test_a_sweep_keeps_the_grid_order_of_points_it_no_longer_lists",),
           "sweep.json forgets the points of an earlier grid of the same study"),
    Mutant("byzantine-fraction-rounded", "sim/adversaries.py",
           "    count = byzantine if isinstance(byzantine, int) else count_of(byzantine, "
           "n_workers)\n",
           "    count = byzantine if isinstance(byzantine, int) else round(byzantine * "
           "n_workers)\n",
           (f"{A}::test_a_fraction_of_the_workers_is_rounded_down",),
           "a fractional adversary count is rounded instead of floored"),
    Mutant("byzantine-check-rounded", "experiments/spec.py",
           "        byzantine if isinstance(byzantine, int) else units.count_of(byzantine, n))\n",
           "        byzantine if isinstance(byzantine, int) else round(byzantine * n))\n",
           (f"{A}::test_a_fraction_of_the_workers_is_rounded_down",),
           "the spec check rounds a fractional adversary count (refusing 0.9 of 2 workers)"),
    Mutant("adversaries-drawn-with-replacement", "sim/adversaries.py",
           "rng.choice(n_workers, count, replace=False)",
           "rng.choice(n_workers, count, replace=True)",
           (f"{A}::test_the_adversaries_drawn_are_distinct_workers",),
           "adversaries drawn with replacement: fewer distinct ones than asked"),
    Mutant("k-fraction-rounded", "experiments/run.py",
           "        k = max(1, count_of(k, n, round_up=True))\n",
           "        k = max(1, round(k * n))\n",
           (f"{S}::test_a_fraction_k_of_the_workers_is_rounded_up",),
           "a fractional server.k is rounded to the nearest count instead of up"),
    Mutant("fraction-count-without-tolerance", "sim/units.py",
           "    return math.ceil(exact - 1e-9) if round_up else math.floor(exact + 1e-9)\n",
           "    return math.ceil(exact) if round_up else math.floor(exact)\n",
           (f"{S}::test_a_fraction_k_of_the_workers_is_rounded_up",
            f"{A}::test_a_fraction_of_the_workers_is_rounded_down"),
           "a fraction's count follows floating-point residue (0.28 * 25 rounded up to 8)"),
    Mutant("gelu-constant-typo", "models/transformer.py",
           "_GELU_C, _GELU_A = float(np.sqrt(2.0 / np.pi)), 0.044715",
           "_GELU_C, _GELU_A = float(np.sqrt(2.0 / np.pi)), 0.04715",
           (f"{X}::test_gelu_is_the_tanh_formula_and_close_to_z_phi_z",),
           "a typo in GELU's cubic coefficient"),
    Mutant("gelu-root-inverted", "models/transformer.py",
           "_GELU_C, _GELU_A = float(np.sqrt(2.0 / np.pi)), 0.044715",
           "_GELU_C, _GELU_A = float(np.sqrt(np.pi / 2.0)), 0.044715",
           (f"{X}::test_gelu_is_the_tanh_formula_and_close_to_z_phi_z",),
           "GELU's tanh scaled by sqrt(pi / 2) instead of sqrt(2 / pi)"),
    Mutant("layer-norm-epsilon", "models/transformer.py",
           "_LN_EPS = 1e-5", "_LN_EPS = 1e-6",
           (f"{X}::test_the_forward_pass_is_the_block_formula",),
           "layer norm's epsilon is not GPT-2's 1e-5"),
    Mutant("attention-scaled-by-the-width", "models/transformer.py",
           "        query *= 1.0 / np.sqrt(dh)\n", "        query *= 1.0 / np.sqrt(d)\n",
           (f"{X}::test_the_forward_pass_is_the_block_formula",),
           "attention scores divided by sqrt(width) instead of sqrt(head width)"),
    Mutant("compiled-fill-least-significant-first", "sim/kernels.py",
           "                for s in range(7, -1, -1):\n", "                for s in range(8):\n",
           (f"{K}::test_fill_sets_each_marked_bit_to_its_own_value",),
           "the compiled fill takes a byte's values least significant bit first"),
    Mutant("fill-values-restart-per-chunk", "sim/wire/bitslice.py",
           "        flags.reshape(-1)[index[values[used:used + index.size]]] = True\n",
           "        flags.reshape(-1)[index[values[:index.size]]] = True\n",
           (f"{K}::test_fill_sets_each_marked_bit_to_its_own_value",),
           "the numpy fill takes every chunk's values from the start"),
    Mutant("random-attack-scaled-over-adversaries", "sim/adversaries.py",
           "axis=1, keepdims=True))\n", "axis=0, keepdims=True))\n",
           (f"{A}::test_each_random_adversary_has_its_own_gradients_scale",),
           "a random adversary's noise takes every adversary's scale per coordinate"),
    Mutant("grid-first-axis-fastest", "experiments/grid.py",
           "    for combination in itertools.product(*axes):\n",
           "    for combination in itertools.product(*axes[::-1]):\n",
           ("tests/test_sweep.py::test_zip_lists_vary_together_and_multiply_with_the_grid",),
           "the first sweep axis varies fastest instead of slowest"),
    Mutant("pin-keeps-a-renamed-section", "experiments/grid.py",
           '        if section in keys or dotted in keys or (not key and f"{section}.name" in '
           "keys):\n",
           "        if section in keys or dotted in keys:\n",
           ("tests/test_discover.py::test_set_pins_a_swept_key_so_one_point_of_a_study_runs",),
           "overriding a section's name keeps its whole-section sweep axis"),
    Mutant("overlap-ignores-section-tables", "experiments/grid.py",
           '                keys.update([f"{section}.{key}"] if key else (f"{section}.{k}" for k '
           "in value))\n",
           '                keys.update([f"{section}.{key}"])\n',
           ("tests/test_sweep.py", "-k", "bad_sweeps"),
           "a key set by a whole-section table and by its own axis is not refused"),
    Mutant("compiled-zero-blocks-uncounted", "sim/kernels.py",
           "                    found += 1\n", "",
           (f"{K}::test_worker_kernel_is_lion_arithmetic",),
           "the compiled worker kernel reports no zero of c, so zeros go unresolved"),
    Mutant("compare-tail-bits-kept", "sim/wire/bitslice.py",
           "    equal[-1] &= _tail_mask(d)\n", "",
           (f"{K}::test_bit_sliced_counts_are_the_summed_bits",),
           "the positions past d count as equal to k = 0"),
    Mutant("allgather-bits-count-own-message", "sim/record.py",
           "            down += sent * (n - 1)\n", "            down += sent * n\n",
           ("tests/test_cluster.py::test_rounds_naming_their_collective",),
           "an all-gather counts a worker's own message among those it receives"),
    Mutant("deadline-row-from-the-wait", "sim/cluster.py",
           "            record.deadline = opening + self.policy.deadline\n",
           "            record.deadline = env.now + self.policy.deadline\n",
           (f"{S}::test_the_deadline_counts_from_the_opening_which_the_servers_work_delays",),
           "the timeline's deadline is drawn from the previous close, not the opening"),
    Mutant("in-flight-beyond-what-is-left", "sim/net/transport.py",
           "        in_flight = np.minimum(window, segments) + np.where(\n",
           "        in_flight = window + np.where(\n",
           (f"{T}::test_a_short_message_never_shrinks_the_window_it_used",),
           "a flow's segments in flight counted beyond what it has left to send"),
    Mutant("mixed-dc-halves-to-even", "sim/net/presets.py",
           'math.floor(spec["slow_fraction"] * n + 0.5)', 'round(spec["slow_fraction"] * n)',
           ("tests/test_presets.py::test_mixed_dc_puts_a_quarter_of_the_workers_on_1gbe",),
           "mixed-dc rounds its slow quarter's halves to even instead of up"),
    Mutant("stale-error-kept", "experiments/sweep.py",
           '        (directory / "error.json").unlink(missing_ok=True)\n', "",
           ("tests/test_sweep.py::test_a_failed_point_is_recorded_and_the_others_finish",),
           "a point that failed and then finished keeps its error.json"),
    Mutant("merge-keeps-a-failed-run", "experiments/sweep.py",
           "            if target.exists() and (is_complete(target) or not is_complete(run)):\n",
           "            if target.exists():\n",
           ("tests/test_sweep.py::test_merge_replaces_a_failed_run_by_a_finished_one",),
           "merge keeps a failed run over a finished one of the same point"),
    Mutant("study-fixes-its-section-axes", "experiments/output.py",
           "                   for section, table in _canonical(point).items() if section not in "
           "axes}\n",
           "                   for section, table in _canonical(point).items()}\n",
           (f"{O}::test_a_study_grows_along_a_whole_section_axis",),
           "a whole-section axis counts as a fixed setting, so the study cannot grow along it"),
    Mutant("push-arrives-with-a-piece", "sim/net/collectives.py",
           "        when_all(env, sent).callbacks.append(lambda e: arrived[w].succeed(e.value))\n",
           "        sent[-1].callbacks.append(lambda e: arrived[w].succeed(e.value))\n",
           (f"{S}::test_a_message_split_over_servers_arrives_with_its_last_piece",),
           "a message split over sharded servers arrives with its last server's piece"),
    Mutant("batch-piece-counted-as-a-message", "sim/net/collectives.py",
           "        self._missing = np.full(n, pieces) if pieces > 1 else None\n",
           "        self._missing = np.full(n, pieces) if pieces > 2 else None\n",
           ("tests/test_collectives.py::test_ps_push_staggered_starts_and_uneven_split",),
           "with two servers, each piece of a message counts as its arrival"),
    # issue 23: the collectives as NCCL runs them
    Mutant("pipeline-without-chunks", "sim/net/pipelined.py",
           "    tau = piece / rate\n", "    tau = segment / rate\n",
           ("tests/test_pipelined.py",), "a pipelined collective streams whole segments, not chunks"),
    Mutant("ring-hops-of-a-reduce-scatter", "sim/net/pipelined.py",
           "RING_STEPS = {\"allreduce\": lambda p: 2 * (p - 1),",
           "RING_STEPS = {\"allreduce\": lambda p: p - 1,",
           ("tests/test_pipelined.py",), "a ring all-reduce takes the p-1 steps of a reduce-scatter"),
    Mutant("tree-one-hop-short", "sim/net/pipelined.py",
           "half, 2 * tree_depth(parent), half,", "half, 2 * tree_depth(parent) - 1, half,",
           ("tests/test_pipelined.py",), "the tree's last chunk crosses one hop fewer than 2 x depth"),
    Mutant("shard-owned-by-one-more", "sim/net/shards.py",
           "    return math.ceil(n_params / max(owners, 1))\n",
           "    return math.ceil(n_params / max(owners + 1, 1))\n",
           ("tests/test_pipelined.py::"
            "test_dlion_sharded_sends_a_share_of_its_signs_and_takes_the_bandwidth_optimal_time",),
           "every shard owner owns the share of one owner more than there are"),
    Mutant("auto-picks-the-slowest", "sim/tuner.py",
           "    best = min(estimates,", "    best = max(estimates,",
           ("tests/test_pipelined.py::"
            "test_auto_is_never_slower_than_any_collective_it_could_have_chosen",),
           "auto chooses the collective its estimate finds slowest"),
    # issue 28: the explorer
    Mutant("explore-collectives-misaligned", "experiments/explore/controls.py",
           "**{key: [s[key] for s in settings] for key in per_method}",
           "**{key: [s[key] for s in settings[::-1]] for key in per_method}",
           (f"{EXPLORE}::test_every_compared_method_runs_its_own_table_and_its_own_collective",),
           "the explorer zips each method with another method's collective"),
    Mutant("explore-hidden-control-counts", "experiments/explore/controls.py",
           "value is not None and applies(control, values):\n",
           "value is not None:\n",
           (f"{EXPLORE}::test_a_model_preset_sizes_the_messages_and_a_custom_model_takes_the_"
            "size_control",),
           "the model-size control overrides the model preset it is hidden for"),
    Mutant("explore-one-method-loses-its-collective", "experiments/explore/controls.py",
           "            _put(raw, key, settings[0][key])\n", "            pass\n",
           (f"{EXPLORE}::test_the_toml_is_the_spec_one_method_for_run_several_for_sweep",),
           "with one method compared, its collective is left out of the spec"),
    Mutant("explore-ladder-not-1-2-5", "experiments/explore/controls.py",
           "        for mantissa in (1, 2, 5):\n", "        for mantissa in (1, 3):\n",
           (f"{EXPLORE}::test_a_ladder_is_a_log_scale_of_1_2_5_steps_over_its_range",),
           "the log-scale controls skip stops"),
    Mutant("explore-widget-value-ignored", "experiments/explore/app.py",
           "    return by_label[widget.value]\n", "    return control.default\n",
           (f"{EXPLORE_PAGE}::test_moving_the_bandwidth_redraws_the_answer_of_that_spec",),
           "the page runs a ladder's or a list's default whatever the widget shows"),
    Mutant("explore-never-cancelled", "experiments/explore/runner.py",
           "                return not self.current(generation)\n",
           "                return False\n",
           (f"{EXPLORE}::test_a_new_job_cancels_the_running_one_before_its_next_step",),
           "a new change waits for the running simulation to finish"),
    Mutant("explore-speedup-inverted", "plots/speedup.py",
           "    return baseline.time_s / answer.time_s, False\n",
           "    return answer.time_s / baseline.time_s, False\n",
           (f"{EXPLORE}::test_the_sentence_names_the_first_and_its_speed_up_over_g_adamw",),
           "the speed-up over G-AdamW is its inverse"),
    Mutant("explore-unreached-baseline-exact", "plots/speedup.py",
           "        return baseline.sim_time_s / answer.time_s, True\n",
           "        return baseline.sim_time_s / answer.time_s, False\n",
           (f"{EXPLORE}::test_a_baseline_that_never_arrives_gives_a_lower_bound",),
           "a G-AdamW that never reached the target is taken to reach it at its last step"),
    Mutant("explore-slowest-named-first", "plots/answer.py",
           "    best = min(reached, key=lambda a: a.time_s)\n",
           "    best = max(reached, key=lambda a: a.time_s)\n",
           (f"{EXPLORE}::test_the_sentence_names_the_first_and_its_speed_up_over_g_adamw",),
           "the sentence names the slowest method as the first to arrive"),
    Mutant("async-staleness-from-the-arrival", "sim/versioned.py",
           "            m.update, m.staleness = index, self.numerics.version - m.version\n",
           "            m.update, m.staleness = index, 0\n",
           (f"{V}::test_async_is_the_event_loop_by_hand",),
           "a message's staleness counted as 0 (no versions since its read)"),
    Mutant("async-gradient-at-a-stale-batch", "sim/versioned.py",
           "        if self._batch is None or self._batch[0] != self.version or self._taken[w]:\n",
           "        if self._batch is None or self._taken[w]:\n",
           (f"{V}::test_async_is_the_event_loop_by_hand",),
           "a worker's gradient taken from a batch computed at an older version"),
    Mutant("versioned-momentum-of-worker-0", "sim/versioned.py",
           "        mine = {**self.state, **{k: self.state[k][w:w + 1] for k in self.rows}}\n",
           "        mine = {**self.state, **{k: self.state[k][0:1] for k in self.rows}}\n",
           (f"{V}::test_async_dlion_steps_by_each_workers_sign_of_its_own_momentum",),
           "every worker encodes with worker 0's momentum on a versioned server"),
    Mutant("ssp-bound-off-by-one", "sim/versioned.py",
           "        go = [w for w in self._waiting if self._clock[w] - self.numerics.version "
           "<= bound]\n",
           "        go = [w for w in self._waiting if self._clock[w] - self.numerics.version "
           "<= bound + 1]\n",
           (f"{V}::test_ssp_with_staleness_0_is_the_synchronous_run",),
           "ssp lets a worker run one clock further ahead than its bound"),
    Mutant("ssp-clock-before-its-last", "sim/versioned.py",
           "            due = len(taken) == self.n\n",
           "            due = len(taken) == self.n - 1\n",
           (f"{V}::test_ssp_with_staleness_0_is_the_synchronous_run",),
           "ssp applies a clock before its last message"),
    Mutant("fedbuff-weight-of-the-first", "sim/versioned.py",
           "        lr = self.lrs[self.version] * float(np.mean(self.policy.weights(staleness)))\n",
           "        lr = self.lrs[self.version] * float(self.policy.weights(staleness)[0])\n",
           (f"{V}::test_fedbuff_steps_by_the_mean_of_each_k_arrivals_weighted_by_their_"
            "staleness",),
           "a buffer's step weighted by its first message's staleness alone"),
    Mutant("hinge-without-the-threshold", "sim/server.py",
           "            return 1.0 / (self.slope * np.maximum(tau - self.threshold, 0.0) + 1.0)\n",
           "            return 1.0 / (self.slope * tau + 1.0)\n",
           (f"{V}::test_staleness_weights_by_hand",),
           "the hinge weight decays from staleness 0, not from its threshold"),
    Mutant("reply-without-the-missed-updates", "sim/versioned.py",
           "        missed = sum(self.reply_bits[self._seen[w]:version])\n",
           "        missed = self.reply_bits[version - 1]\n",
           (f"{V}::test_a_reply_carries_the_updates_its_worker_missed",),
           "a reply carries only the last update, not all its worker missed"),
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
