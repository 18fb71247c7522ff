"""How long the explorer takes to redraw a view, how fast a change cancels the view being
computed, and (with Chromium) the same seen from the browser.

A redraw is the page's job for one view: every compared method simulated to the target (or to
its last step) by the explorer's Runner, one after another in its background thread, reusing
the objective while it stays the same. It is timed warm (the page's first view also builds the
objective and imports the numerics), best of R, and compared with the reference measured in
the same run: the same specs run one after another by ``experiments.simulate``, which builds
the objective for every method. The target (about a second on 2 cores) applies to the page's
default view. Cancellation: the time from a new job's submission to its first step while a
long job runs, against one step of that long job (the stop callable is checked before each).
In the browser: from pressing the right arrow on the bandwidth slider to the status line
saying the new view is drawn, and how often the status line moved during a long view (the
page is not frozen while it computes).
Run: .venv/bin/python benchmarks/bench_explore.py [--repeats R] [--no-browser]
"""
import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from timing import best_seconds, record, write

import experiments
from experiments.explore import controls
from experiments.explore.runner import Job, Runner

TARGET = "<= 1"
VIEWS = {
    "default (4 methods, 8 workers, 1 Gb/s)": {},
    "10 Gb/s": {"network.bandwidth": "10Gbps"},
    "64 workers": {"cluster.workers": 64},
    "jitter 0.2, stragglers 0.1": {"compute.jitter": 0.2, "compute.straggler_prob": 0.1},
    "all 15 methods": None,
}


def _specs(view: dict | None) -> list[dict]:
    compared = [(v.key, {}) for v in controls.METHODS if view is None or v.on]
    return controls.points(controls.spec({**controls.defaults(), **(view or {})}, compared))


def _redraw(runner: Runner, specs: list[dict]) -> None:
    done = threading.Event()
    runner.submit(Job(specs, lambda *a: None, lambda *a: done.set(),
                      lambda g, i, message: sys.exit(f"view failed: {message}")))
    done.wait()


def _cancel_latency(runner: Runner) -> tuple[float, float]:
    """(seconds from submitting a job to its first step while a long one runs, seconds per
    step of the long one)."""
    long = _specs({"run.steps": 2000, "run.target": 0.30, "cluster.workers": 64})[:1]
    first = runner.submit(Job(long, lambda *a: None, lambda *a: None, lambda *a: None))
    while runner.progress()[0] != first or runner.progress()[2] < 50:
        time.sleep(0.001)
    t0, steps0 = time.perf_counter(), runner.progress()[2]
    time.sleep(0.5)
    per_step = (time.perf_counter() - t0) / (runner.progress()[2] - steps0)
    started = time.perf_counter()
    second = runner.submit(Job(_specs({})[:1], lambda *a: None, lambda *a: None,
                               lambda *a: None))
    while runner.progress()[0] != second:
        time.sleep(0.0005)
    return time.perf_counter() - started, per_step


def _browser(repeats: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import browser
    from selenium.webdriver.common.keys import Keys

    if browser.missing():
        print(f"browser: skipped ({browser.missing()})")
        return
    proc, url = browser.start_server()
    driver = browser.chromium(Path(tempfile.mkdtemp(prefix="bench-explore-")))
    try:
        t0 = time.perf_counter()
        driver.get(url)
        _, generation, _ = browser.settled(driver)
        print(f"browser: the page's first view drawn {time.perf_counter() - t0:.2f} s after "
              "loading it (cold: objective built, numerics imported)")
        handle = browser.find(driver, ".noUi-handle", "NIC bandwidth (per worker, or per node)")[0]
        driver.execute_script("arguments[0].focus()", handle)
        best = float("inf")
        for i in range(repeats):
            t0 = time.perf_counter()
            handle.send_keys(Keys.ARROW_RIGHT if i % 2 == 0 else Keys.ARROW_LEFT)
            while (state := browser.status(driver))[1] <= generation or state[0] != "done":
                time.sleep(0.01)
            best, generation = min(best, time.perf_counter() - t0), state[1]
        print(f"browser: bandwidth moved one stop -> new view drawn in {best:.2f} s "
              f"(target {TARGET} s)")
        record("explore_browser_redraw_s", best, TARGET,
               "seconds from the key press to the status line's 'done' (absolute)")
        # the lowest target (0.30, about the optimum) and 2000 steps: a view of many seconds
        for title, key in (("Target (evaluation loss)", Keys.HOME), ("Steps at most", Keys.END)):
            slider = browser.find(driver, ".noUi-handle", title)[0]
            driver.execute_script("arguments[0].focus()", slider)
            slider.send_keys(key)
        texts, t0 = set(), time.perf_counter()
        while (state := browser.status(driver))[0] != "done" or time.perf_counter() - t0 < 0.5:
            texts.add(state[2])
            time.sleep(0.05)
        took = time.perf_counter() - t0
        print(f"browser: a long view took {took:.1f} s ({state[2]}); the status line showed "
              f"{len(texts)} different progress lines meanwhile (the page kept answering)")
        record("explore_browser_progress_lines", float(len(texts)), None,
               "distinct status lines seen while a long view ran", seconds=took)
    finally:
        driver.quit()
        browser.stop_server(proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    runner = Runner()
    for name, view in VIEWS.items():
        specs = _specs(view)
        page = best_seconds(lambda: _redraw(runner, specs), args.repeats)
        bare = best_seconds(lambda: [experiments.simulate(s) for s in specs], args.repeats)
        target = TARGET if view == {} else None
        print(f"redraw, {name}: {page:.2f} s ({len(specs)} methods; target "
              f"{target or 'none'} s), {page / bare:.2f}x the same specs through "
              f"experiments.simulate ({bare:.2f} s)")
        key = "explore_redraw_" + name.split(" (")[0].replace(" ", "_").replace(",", "")
        record(key, page, target, "seconds of wall time (absolute); ratio: experiments.simulate "
               "of the same specs one after another", ratio_to_simulate=page / bare,
               simulate_s=bare, methods=len(specs))
    latency, per_step = _cancel_latency(runner)
    print(f"cancel: the new view's first step began {latency * 1e3:.1f} ms after the change, "
          f"{latency / per_step:.1f}x one step of the view it cancelled ({per_step * 1e3:.1f} "
          "ms)")
    record("explore_cancel_ms", latency * 1e3, None, "ms from a change to its first step; ratio:"
           " one step of the cancelled view", ratio_to_step=latency / per_step)
    runner.close(wait=60)
    if not args.no_browser:
        _browser(args.repeats)
    print(f"wrote {write()}")


if __name__ == "__main__":
    main()
