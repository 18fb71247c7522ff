"""The explorer's logic without a browser: the spec its controls make, the runner that a new
change cancels, and the answer in words (experiments/explore, plots/answer.py)."""
import math
import re
import threading
import time
import tomllib

import pytest

from experiments.explore import controls
from experiments.explore.runner import Job, Runner
from experiments.spec import SpecError, resolve
from plots.answer import Answer, sentence, table_html
from sim import methods
from sim.net import presets

HANG = 60  # seconds after which something that should have happened counts as hung
DEFAULT_METHODS = [(v.key, {}) for v in controls.METHODS if v.on]
GLOBAL = [c for c in controls.CONTROLS if c.per_method is None]
COLLECTIVE = next(c for c in controls.CONTROLS if c.key == "network.collective")

# what a label means, read independently of the code that wrote it
_LABEL_UNITS = {"b/s": 1.0, "kb/s": 1e3, "Mb/s": 1e6, "Gb/s": 1e9, "Tb/s": 1e12,
                "ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "": 1.0, "k": 1e3, "M": 1e6,
                "B": 1e9}


def _label_value(label: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+) ?(\S*)", label).groups()
    return float(number) * _LABEL_UNITS[unit]


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _resolved(values: dict, compared=DEFAULT_METHODS) -> list[dict]:
    return controls.points(controls.spec({**controls.defaults(), **values}, compared))


def _at(spec: dict, dotted: str):
    section, key = dotted.split(".")
    return spec[section][key]


# --- the spec the controls make ------------------------------------------------------------

@pytest.mark.parametrize("control", [c for c in GLOBAL if c.kind in ("int", "number")],
                         ids=lambda c: c.key)
def test_a_slider_sets_its_key_to_the_value_shown(control):
    for value in (control.low, control.high):
        shown = int(value) if control.kind == "int" else value
        for spec in _resolved({control.key: shown}):
            assert _at(spec, control.key) == shown


@pytest.mark.parametrize("control", [c for c in GLOBAL if c.kind == "ladder"],
                         ids=lambda c: c.key)
def test_a_ladder_runs_the_value_its_label_says(control):
    values = {"cluster.model": None}  # the model size applies to a custom model only
    for value, label in controls.ladder(control):
        if value is None:
            continue
        spec = _resolved({**values, control.key: value})[0]
        assert _at(spec, control.key) == pytest.approx(_label_value(label), rel=1e-12), label


@pytest.mark.parametrize("control", [c for c in GLOBAL if c.kind == "ladder"],
                         ids=lambda c: c.key)
def test_a_ladder_is_a_log_scale_of_1_2_5_steps_over_its_range(control):
    stops = [_label_value(label) for value, label in controls.ladder(control)
             if value is not None]
    ratios = [b / a for a, b in zip(stops, stops[1:])]
    assert all(r == pytest.approx(2) or r == pytest.approx(2.5) for r in ratios), ratios
    assert stops[0] >= control.low * (1 - 1e-9) and stops[-1] <= control.high * (1 + 1e-9)
    assert stops[0] < 2 * control.low and stops[-1] > control.high / 2.5


def test_a_model_preset_sizes_the_messages_and_a_custom_model_takes_the_size_control():
    size = next(c for c in GLOBAL if c.key == "cluster.model_params")
    for name, preset in presets.MODELS.items():
        # the size control does not count while a preset is chosen
        spec = _resolved({"cluster.model": name, "cluster.model_params": 10**9})[0]
        assert spec["cluster"]["model_params"] == preset["params"]
        assert spec["compute"]["step_time"] == preset["step_time"]  # "the preset's"
    assert controls.applies(size, {"cluster.model": None})
    assert not controls.applies(size, {"cluster.model": "resnet50"})
    custom = _resolved({"cluster.model": None, "cluster.model_params": 10**9})[0]
    assert custom["cluster"]["model_params"] == 10**9 and custom["cluster"]["model"] is None
    assert custom["compute"]["step_time"] == 0.0
    timed = _resolved({"cluster.model": "gpt2-small", "compute.step_time": "20ms"})[0]
    assert timed["compute"]["step_time"] == pytest.approx(0.02)


def test_every_compared_method_runs_its_own_table_and_its_own_collective():
    compared, allowed_last = [], {}
    for variant in controls.METHODS:
        allowed = [c for c in methods.METHODS[variant.method["name"]].collectives
                   if c != "hierarchical"]  # GPU nodes only: left to auto
        assert controls.options(COLLECTIVE, variant.method["name"]) == \
            [(c, c) for c in allowed]
        compared.append((variant.key, {"network.collective": allowed[-1]}))
        allowed_last[variant.key] = allowed[-1]
    specs = controls.points(controls.spec(controls.defaults(), compared))
    assert len(specs) == len(controls.METHODS)
    for variant, spec in zip(controls.METHODS, specs):
        assert {k: spec["method"][k] for k in variant.method} == variant.method
        assert spec["network"]["collective"] == allowed_last[variant.key]


def test_an_untouched_collective_is_the_methods_own_default():
    specs = _resolved({}, [("dgc", {}), ("gadamw", {})])
    assert [s["network"]["collective"] for s in specs] == ["auto", "auto"]
    assert [s["method"]["name"] for s in specs] == ["dgc", "gadamw"]


def test_the_toml_is_the_spec_one_method_for_run_several_for_sweep():
    several = controls.spec(controls.defaults(), DEFAULT_METHODS)
    text = controls.toml(several)
    assert tomllib.loads(text) == several and "dlion-sim sweep" in text
    one = controls.spec(controls.defaults(), [("gadamw", {"network.collective": "ring"})])
    assert "sweep" not in one and tomllib.loads(controls.toml(one)) == one
    assert "dlion-sim run" in controls.toml(one)
    assert resolve(one)["network"]["collective"] == "ring"


def test_a_value_the_simulator_refuses_is_its_one_line_spec_error():
    with pytest.raises(SpecError, match="halving_doubling' needs a power of two") as err:
        _resolved({"cluster.workers": 6},
                  [("gadamw", {"network.collective": "halving_doubling"})])
    assert "\n" not in str(err.value)
    with pytest.raises(SpecError, match="tick at least one"):
        controls.spec(controls.defaults(), [])


# --- the runner ------------------------------------------------------------------------------

def _quick(steps: int) -> dict:
    return resolve({"objective": {"name": "quadratic", "dim": 8}, "method": {"name": "gadamw"},
                    "cluster": {"workers": 2}, "run": {"steps": steps, "eval_every": 0}})


class _Answers:
    def __init__(self):
        self.results, self.errors, self.done = [], [], threading.Event()

    def job(self, specs):
        return Job(specs, lambda g, i, r: self.results.append((g, i, r)),
                   lambda g, wall: self.done.set(), lambda g, i, m: self.errors.append(m))


def test_a_new_job_cancels_the_running_one_before_its_next_step():
    runner = Runner()
    slow, quick = _Answers(), _Answers()
    try:
        long_steps = 10**7  # hours of work unless it is cancelled
        first = runner.submit(slow.job([_quick(long_steps)]))
        _wait_until(lambda: runner.progress()[0] == first and runner.progress()[2] >= 3,
                    "the slow job's third step")
        second = runner.submit(quick.job([_quick(5), _quick(6)]))
        assert quick.done.wait(HANG), "the running job was not cancelled"
        assert [(g, i) for g, i, _ in quick.results] == [(second, 0), (second, 1)]
        assert [r.summary["steps"] for _, _, r in quick.results] == [5, 6]
        assert slow.results == [] and not slow.done.is_set() and slow.errors == []
        assert not runner.current(first) and runner.current(second)
    finally:
        runner.close(wait=HANG)


def test_a_spec_that_cannot_run_is_answered_in_one_line():
    runner, answers = Runner(), _Answers()
    try:
        bad = _quick(5)
        bad["objective"]["dim"] = 10**11  # 400 GB per array: refused before any array exists
        runner.submit(answers.job([_quick(3), bad]))
        _wait_until(lambda: answers.errors, "the error")
        assert len(answers.results) == 1 and not answers.done.is_set()
        assert answers.errors[0].startswith("the spec needs about") or \
            "memory" in answers.errors[0], answers.errors[0]
        assert "\n" not in answers.errors[0]
    finally:
        runner.close(wait=HANG)


# --- the answer in words ---------------------------------------------------------------------

def _answer(key, time_s, steps=300, sim=None):
    return Answer(key, time_s, steps, sim if sim is not None else (time_s or 1000.0), 2.0, "#000")


def test_the_sentence_names_the_first_and_its_speed_up_over_g_adamw():
    found = [_answer("dlion/mavo", 80.8), _answer("glion", 1960.0), _answer("gadamw", 840.0)]
    text = sentence(found, "evaluation loss ≤ 0.35")
    # 840 / 80.8 = 10.396...
    assert text.startswith("D-Lion (MaVo) reaches evaluation loss ≤ 0.35 first, in 80.8 s")
    assert "10.4x faster than G-AdamW (840 s)" in text
    table = table_html(found)
    assert ">10.4x<" in table and ">0.429x<" in table and ">1x<" in table  # 840/1960 = 0.4286


def test_a_baseline_that_never_arrives_gives_a_lower_bound():
    found = [_answer("dlion/avg", 12.5), _answer("gadamw", None, steps=300, sim=500.0)]
    text = sentence(found, "evaluation loss ≤ 0.35")
    assert "G-AdamW does not reach it in its 300 steps (500 s)" in text
    assert "more than 40x faster" in text  # 500 / 12.5
    assert "&gt; 40x" in table_html(found)


def test_when_g_adamw_is_first_the_next_method_is_compared_to_it():
    found = [_answer("dlion/mavo", 30.0), _answer("gadamw", 10.0), _answer("glion", 25.0)]
    text = sentence(found, "T")
    assert text.startswith("G-AdamW reaches T first, in 10 s")
    assert "the next, G-Lion, takes 2.5x as long" in text


def test_without_g_adamw_or_any_arrival_the_sentence_says_so():
    assert "tick G-AdamW" in sentence([_answer("glion", 3.0)], "T")
    none = sentence([_answer("glion", None, steps=200), _answer("gadamw", None)], "T")
    assert none.startswith("No method reaches T within 300 steps")
    assert math.isfinite(_answer("glion", None).sim_time_s)
