"""The explorer's simulations: one job at a time in a background thread, so the page never
waits for one, and a newer job cancels the running one before its next step.

A job is the list of resolved specs of one view (one per compared method); each result is
handed over as soon as it exists, so a long job shows its methods one by one. The objective is
built once and reused while the spec's [objective] stays the same: objectives are deterministic
(their data come from their own seed), so a run gives the numbers ``experiments.simulate``
gives, without rebuilding the data and its optimum for every method.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Callable

import models
from experiments import footprint
from experiments.run import Cancelled, check_data, execute
from experiments.spec import SpecError


@dataclass
class Job:
    """What to run, and where its answers go (each called with the job's generation first,
    from the runner's thread): ``on_result(generation, index, result)`` per spec,
    ``on_done(generation, wall seconds)`` after the last, ``on_error(generation, index,
    message)`` instead when a spec cannot run (the message is one line)."""

    specs: list[dict]
    on_result: Callable
    on_done: Callable
    on_error: Callable


class Runner:
    """Runs the latest submitted job; ``submit`` cancels the one running (its ``stop`` says so
    before the next step, and its results are never handed over)."""

    def __init__(self):
        self._objective: tuple[str, object] | None = None  # ([objective] as JSON, the object)
        self._wake = threading.Condition()
        self._generation = 0
        self._pending: tuple[int, Job] | None = None
        self._closed = False
        self._at = (0, 0, 0)  # (generation, index of the spec running, steps begun in it)
        self._thread = threading.Thread(target=self._loop, name="explore-runner", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> int:
        """Queue ``job`` in place of any job queued or running; returns its generation."""
        with self._wake:
            self._generation += 1
            self._pending = (self._generation, job)
            self._wake.notify()
            return self._generation

    def cancel(self) -> int:
        """Cancel the job queued or running, with nothing in its place; returns the new
        generation (no job has it)."""
        with self._wake:
            self._generation += 1
            self._pending = None
            return self._generation

    def current(self, generation: int) -> bool:
        """Whether ``generation`` is still the latest job (a stale one's answers are dropped)."""
        return not self._closed and generation == self._generation

    def progress(self) -> tuple[int, int, int]:
        """(generation, index of the spec running, steps it has begun) of the job running."""
        return self._at

    def close(self, wait: float | None = None) -> None:
        """Cancel everything and end the thread (waiting up to ``wait`` seconds for it)."""
        with self._wake:
            self._closed = True
            self._pending = None
            self._wake.notify()
        if wait is not None:
            self._thread.join(wait)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                (generation, job), self._pending = self._pending, None
            self._work(generation, job)

    def _objective_of(self, spec: dict):
        """The objective of ``spec``: the last one built when its [objective] is the same."""
        key = json.dumps(spec["objective"], sort_keys=True)
        if self._objective is None or self._objective[0] != key:
            footprint.check(spec)  # as execute does, before any array exists
            check_data(spec)
            params = {k: v for k, v in spec["objective"].items() if k != "name"}
            self._objective = (key, models.make(spec["objective"]["name"], **params))
        return self._objective[1]

    def _work(self, generation: int, job: Job) -> None:
        start = time.perf_counter()
        for index, spec in enumerate(job.specs):
            steps = 0

            def stop() -> bool:  # checked by execute before every step
                nonlocal steps
                steps += 1
                self._at = (generation, index, steps)
                return not self.current(generation)

            try:
                result = execute(spec, self._objective_of(spec), stop=stop)
            except Cancelled:
                return
            except SpecError as err:
                message = str(err)
            except Exception as err:  # noqa: BLE001 (the page shows it; the server goes on)
                message = f"the simulation failed: {type(err).__name__}: {err}".splitlines()[0]
            else:
                if not self.current(generation):
                    return
                job.on_result(generation, index, result)
                continue
            if self.current(generation):
                job.on_error(generation, index, message)
            return
        if self.current(generation):
            job.on_done(generation, time.perf_counter() - start)
