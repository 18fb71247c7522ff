"""Experiments: specs, runs, sweeps, results on disk and the command line."""
from experiments.results import Result, load
from experiments.run import simulate
from experiments.spec import SpecError, resolve

__all__ = ["Result", "SpecError", "load", "resolve", "simulate"]
