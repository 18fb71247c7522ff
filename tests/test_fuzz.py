"""Fuzz the bundled specs: every mutation either runs or is refused with the one-line SpecError.

Each example takes a grid point of a bundled spec, shrunk to a few steps on a small objective,
and mutates it: keys deleted, values of another type, extreme numbers, random strings, unknown
keys. The outcome must be a finished run or ``SpecError`` (what the command line prints as one
line with exit status 2), never another exception and never a hang. Memory is capped as on a
small machine, so huge but valid sizes meet the up-front memory refusal instead of being
allocated. The mutations are generic over whatever keys a spec has, so keys added later are
fuzzed too.
"""
import copy
import math
import signal
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from experiments import footprint
from experiments.results import Result
from experiments.spec import SpecError, bundled_names, bundled_spec, load_toml, resolve
from experiments.run import check_data, simulate
from experiments.grid import expand

STEPS = 3
MEMORY = 256 * 2**20  # bytes the fuzzed runs may ask for
HANG_S = 30           # an example running longer than this counts as a hang

EXTREMES = [0, -1, 1, 3, -0.0, 0.5, 1e-300, 1e300, 1e308, -1e308, math.inf, -math.inf, math.nan,
            10**6, 1e6, 2**31, 2**53, 2**63, 2**64, 10**30, 65535, 65536]
OTHER_TYPES = [True, False, "x", "", [], [1, 2], [0.9], {"a": 1}, {}, None, 7, 2.5, "10Gbps",
               "50us", "4MiB", "dlion", "random", ["1Gbps", "2Gbps"]]
STRINGS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def _small(point: dict) -> dict:
    """A grid point made quick: few steps, a small objective, data that ships with Python."""
    point = copy.deepcopy(point)
    objective = point.setdefault("objective", {})
    for key, most in (("samples", 512), ("features", 15), ("dim", 64), ("eval_size", 200)):
        if isinstance(objective.get(key), int):
            objective[key] = min(objective[key], most)
    if objective.get("name") in ("mlp", "softmax"):
        objective.update(dataset="synthetic", hidden=[16])
    if objective.get("name") == "charlm":
        objective.update(dataset="pydoc", context=4, embed=4, hidden=[16], eval_size=200)
    point.setdefault("run", {}).update(steps=STEPS, eval_every=1)
    return point


BASES = [_small(p) for name in bundled_names() for p in expand(load_toml(bundled_spec(name)))]


def _paths(raw: dict) -> list[tuple]:
    """Every (section,) and (section, key) of a raw spec."""
    out = []
    for section, table in raw.items():
        out.append((section,))
        if isinstance(table, dict):
            out.extend((section, key) for key in table)
    return out


@st.composite
def mutated(draw):
    raw = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(raw)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["delete", "type", "extreme", "string", "new key"]))
        holder = raw if len(path) == 1 else raw[path[0]]
        if action == "delete":
            del holder[path[-1]]
        elif action == "new key":
            target = raw[path[0]] if isinstance(raw[path[0]], dict) else raw
            target[draw(STRINGS)] = draw(st.sampled_from(OTHER_TYPES))
        else:
            value = {"type": st.sampled_from(OTHER_TYPES), "extreme": st.sampled_from(EXTREMES),
                     "string": STRINGS}[action]
            holder[path[-1]] = draw(value)
    return raw


def _alarm(signum, frame):
    raise TimeoutError(f"a fuzzed spec ran longer than {HANG_S} s")


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(raw=mutated())
def test_a_mutated_bundled_spec_runs_or_is_refused_in_one_line(raw):
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        with mock.patch.object(footprint, "available", return_value=MEMORY):
            result = simulate(raw, progress=False)
    except SpecError as err:
        text = str(err)
        assert text and "\n" not in text, repr(text)
        return
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert isinstance(result, Result)
    assert result.summary["status"] in ("completed", "diverged", "target_reached")


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_spec_shrunk_runs(name):
    """The unmutated bases run, so the fuzz above mutates specs that work."""
    point = _small(expand(load_toml(bundled_spec(name)))[0])
    try:
        check_data(resolve(point))
    except SpecError as err:  # the message names the command that installs the data set
        pytest.skip(f"the {name} study needs a data set that is not installed: {err}")
    assert simulate(point, progress=False).summary["steps"] <= STEPS


KEYS = sorted({f"{section}.{key}" for base in BASES for section, table in base.items()
               if isinstance(table, dict) for key in table})
TOML_VALUES = st.sampled_from(["1", "-1", "0", "1e308", "inf", "nan", "true", "'x'", "[]",
                               "[1, 2]", "{}", "{name = 'gadamw'}", "10Gbps", "50us", "4MiB",
                               "gadamw", "2**63", "99999999999999999999", "\"\"", "[", "=",
                               "1.5"])


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(sets=st.lists(st.tuples(st.sampled_from(KEYS) | STRINGS, TOML_VALUES | STRINGS),
                     max_size=3),
       unsets=st.lists(st.sampled_from(KEYS) | STRINGS | st.just("-x"), max_size=2))
def test_command_line_overrides_end_in_a_run_or_one_line(tmp_path_factory, capsys, sets,
                                                        unsets):
    from experiments.cli import main

    out = tmp_path_factory.mktemp("cli")
    spec = out / "spec.toml"
    spec.write_text('[objective]\nname = "logistic"\nsamples = 256\nfeatures = 7\n'
                    '[method]\nname = "dlion"\naggregate = "avg"\n[cluster]\nworkers = 2\n'
                    f'[run]\nsteps = {STEPS}\neval_every = 1\n')
    argv = ["run", str(spec), "-o", str(out / "run")]
    for key, value in sets:
        argv += ["--set", f"{key}={value}"]
    for key in unsets:
        argv += ["--unset", key]
    capsys.readouterr()
    with mock.patch.object(footprint, "available", return_value=MEMORY):
        try:
            status = main(argv)
        except SystemExit as exit:  # argparse refusing the command line itself
            status = exit.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("dlion-sim: note:")]
    if status == 0:
        assert not errors, err
    else:
        assert status == 2 and len(errors) == 1 and errors[0].startswith("dlion-sim: error:"), err
