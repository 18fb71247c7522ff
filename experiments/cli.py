"""The ``dlion-sim`` command line: run, sweep, merge, plot, summary, list, demo, explore."""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path

from experiments.spec import SpecError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process ended by Ctrl-C


def _notes(notes: list[str]) -> None:
    for note in notes:
        print(f"dlion-sim: note: {note}", file=sys.stderr)


def _load(args):
    """(spec path, raw spec as in the file, raw spec with --unset/--set applied and the keys
    they set pinned out of its [sweep])."""
    from experiments.spec import (bundled_spec, load_toml, overridden, parse_assignment,
                                  parse_unset, override)
    from experiments.grid import pin

    path = bundled_spec(args.spec)
    original = load_toml(path)
    items = [parse_assignment(t) for t in args.set]
    unset = [parse_unset(t) for t in args.unset]
    notes = []
    raw = pin(override(original, items, unset, notes), overridden(items, unset))
    _notes(notes)
    return path, original, raw


def _progress() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextlib.contextmanager
def _second_interrupt_exits():
    """While inside: the first Ctrl-C interrupts as usual (a sweep cancels its points and
    reports); a second one ends the worker processes and exits at once, whatever the sweep is
    doing."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    calls = []

    def handler(signum, frame):
        calls.append(signum)
        if len(calls) > 1:
            for child in multiprocessing.active_children():
                child.kill()
            print("dlion-sim: interrupted again: exiting now", file=sys.stderr)
            raise SystemExit(EXIT_INTERRUPTED)  # not os._exit: the exit still removes the pool's semaphores
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _first_interrupt_stops():
    """While inside: the first Ctrl-C sets the event it yields (a run ends after its current
    step and keeps what it computed); a second one interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # only the main thread may handle signals
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt("interrupted again: stopped at once; nothing written")
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _changed(original: dict, raw: dict, resolved) -> bool:
    """Whether the overrides changed what ``resolved`` (resolve or plan) makes of the spec."""
    if raw == original:
        return False
    try:
        return resolved(original) != resolved(raw)
    except SpecError:  # the file alone cannot run (e.g. a sweep whose axes --set pinned)
        return True


def cmd_run(args) -> int:
    from experiments.output import check_run_dir, default_name
    from experiments.run import execute
    from experiments.spec import resolve, spec_hash

    path, original, raw = _load(args)
    if "sweep" in raw or "tune" in raw:
        from experiments.grid import axis_keys
        from experiments.grid import expand
        from experiments.tune import tune_keys

        for point in expand(raw):  # a typo anywhere is named first: it would stop the sweep
            resolve(point)
        tables = " and ".join(f"[{t}]" for t in ("sweep", "tune") if t in raw)
        varied = ", ".join(axis_keys(raw) + tune_keys(raw))
        raise SpecError(f"{path} has a {tables} table{'s' if ' and ' in tables else ''} (it "
                        f"varies {varied}): run it with "
                        f"`dlion-sim sweep {args.spec}`, or pin each varied key with --set")
    spec = resolve(raw)
    if args.output:
        out = Path(args.output)
    else:
        out = default_name(path.stem, _changed(original, raw, resolve), spec_hash(spec))
    check_run_dir(out, spec, force=args.force)
    with _first_interrupt_stops() as interrupted:  # memory and data are checked first
        result = execute(spec, progress=_progress(), label=path.stem, stop=interrupted.is_set,
                         keep_when_stopped=True)
        s = result.summary
        if s["status"] == "interrupted" and s["steps"] == 0:
            raise KeyboardInterrupt("interrupted before the first step; nothing written")
        result.save(out)
    if s["status"] == "interrupted":
        print(f"dlion-sim: interrupted after step {s['steps']} of {spec['run']['steps']}: the "
              f"steps run so far are in {out} (status 'interrupted' in its summary.json)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    final = ", ".join(f"{k} {v:.4g}" for k, v in s["final"].items() if isinstance(v, float))
    steady = s["steady_bits_per_param_per_step"]["total"]
    after = "" if s["steady_from_step"] == 1 or steady is None else \
        f" ({steady:.3g} from step {s['steady_from_step']}, after the method's warm-up)"
    unit, stale = "step", ""
    if s.get("staleness", {}).get("messages"):  # a versioned server: its steps are updates
        st = s["staleness"]
        unit, stale = "update", (f" (staleness mean {st['mean']:.3g}, p90 {st['p90']:.3g}, "
                                 f"max {st['max']})")
    print(f"{s['status']}: {s['steps']} {unit}s{stale}, {s['sim_time_s']:.4g} s simulated, "
          f"{s['bits_per_param_per_step']['total']:.3g} bits/param/{unit}{after}; {final}")
    print(f"wrote {out}")
    return 0


def cmd_sweep(args) -> int:
    from experiments.output import default_name
    from experiments.spec import spec_hash
    from experiments.sweep import parse_shard, plan, run_sweep

    path, original, raw = _load(args)
    if args.jobs is not None and args.jobs < 1:
        raise SpecError(f"--jobs {args.jobs}: expected a whole number >= 1")
    shard = parse_shard(args.shard) if args.shard else None
    if args.output:
        out = Path(args.output)
    else:
        out = default_name(path.stem, _changed(original, raw, lambda r: list(plan(r))),
                           spec_hash(raw))
    with _second_interrupt_exits():
        records = run_sweep(raw, out, jobs=args.jobs, progress=_progress(), dask=args.dask,
                            shard=shard, force=args.force)
    failed = [r for r in records if r["status"].startswith("failed")]
    skipped = sum(r["status"] == "done before" for r in records)
    piece = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    for r in failed:
        print(f"  {r['dir']}: {r['status']}", file=sys.stderr)
    print(f"{len(records)} runs{piece} in {out} ({skipped} already done, {len(failed)} failed); "
          f"table {out / 'runs.csv'}")
    from experiments import tune

    tuned = tune.read(out) if "tune" in raw else None
    if tuned is not None:
        for warning in tune.edge_warnings(out):
            print(f"dlion-sim: warning: {warning}", file=sys.stderr)
        won = sum(g["best"] is not None for g in tuned["groups"])
        print(f"tuned {', '.join(tuned['keys'])} by {tuned['objective'].replace('_', ' ')}: "
              f"best values of {won} of {len(tuned['groups'])} settings and methods in "
              f"{out / tune.TUNE}")
    return 1 if failed else 0


def cmd_merge(args) -> int:
    from experiments.sweep import merge

    counts = merge(args.output, args.pieces, move=args.move)
    print(f"merged into {args.output}: {counts['added']} runs added, {counts['replaced']} "
          f"failed runs replaced, {counts['kept']} already there; "
          f"table {Path(args.output) / 'runs.csv'}")
    return 0


def cmd_plot(args) -> int:
    from plots import bandwidth, curves, heatmap, sweep, timeline, tradeoff
    from plots.data import PlotError


    # options that only some kinds take; naming a wrong one is an error, not silently ignored
    takes = {"curves": {"metric", "x"}, "tradeoff": {"metric", "target", "bits"},
             "bandwidth": {"metric", "target"},
             "heatmap": {"metric", "target", "method", "baseline"}, "timeline": {"steps"},
             "sweep": {"metric", "target", "key", "series"}, **{k: set() for k in STUDY_KINDS}}
    given = {k for k in ("metric", "x", "target", "steps", "method", "baseline", "key", "series",
                         "bits") if getattr(args, k) is not None}
    if given - takes[args.kind]:
        raise SpecError(f"--kind {args.kind} does not take "
                        f"{', '.join('--' + k for k in sorted(given - takes[args.kind]))}; "
                        f"it takes: {', '.join('--' + k for k in sorted(takes[args.kind]))}")
    from experiments.output import check_writable_file
    from plots.figure import check_format

    out = Path(args.output or Path(args.directory) / f"{args.kind}.png")
    try:
        check_format(out)
    except PlotError as err:
        raise SpecError(str(err)) from None
    check_writable_file(out)  # now, not after drawing
    try:
        if args.kind == "curves":
            curves.plot_curves(args.directory, out, metric=args.metric,
                               axes=(args.x,) if args.x else ("step", "time", "bits"))
        elif args.kind == "tradeoff":
            tradeoff.plot_tradeoff(args.directory, out, metric=args.metric or "loss",
                                   target=args.target, bits=args.bits or "total")
        elif args.kind == "bandwidth":
            bandwidth.plot_bandwidth(args.directory, out, metric=args.metric, target=args.target)
        elif args.kind == "heatmap":
            heatmap.plot_heatmap(args.directory, out, method=args.method,
                                 baseline=args.baseline or "gadamw", metric=args.metric,
                                 target=args.target)
        elif args.kind == "sweep":
            sweep.plot_sweep(args.directory, out, key=args.key or "cluster.workers",
                             metric=args.metric or "loss", series=args.series,
                             target=args.target)
        elif args.kind == "timeline":
            timeline.plot_timeline(args.directory, out, steps=_step_range(args.steps))
        else:  # a bundled study's own figure, plots/<kind>.py; it returns its numbers
            import importlib

            draw = getattr(importlib.import_module(f"plots.{args.kind}"), f"plot_{args.kind}")
            for line in draw(args.directory, out):
                print(line)
    except PlotError as err:
        raise SpecError(str(err)) from None
    for warning in _incomplete_sweeps(args.directory):
        print(f"dlion-sim: warning: {warning}", file=sys.stderr)
    print(f"wrote {out}")
    return 0


def cmd_summary(args) -> int:
    from plots.data import PlotError
    from plots.summary_table import format_table, summary_table, write_csv

    if args.csv:
        from experiments.output import check_writable_file

        check_writable_file(Path(args.csv))  # before reading anything
    try:
        table = summary_table(args.directory, baseline=args.baseline,
                              tuned="all" if args.all_tuned else "best")
    except PlotError as err:
        raise SpecError(str(err)) from None
    print(format_table(table))
    for warning in _incomplete_sweeps(args.directory):
        print(f"dlion-sim: warning: {warning}", file=sys.stderr)
    if args.csv:
        print(f"wrote {write_csv(table, args.csv)}")
    return 0


#: --kind of the bundled studies' own figures: plots/<kind>.py draws it with plot_<kind>
STUDY_KINDS = {"rtt": "rtt study: D-Lion's speed-up against the round trip, tcp and fluid",
               "deadline": "deadline study: policies against heavy-tailed stragglers",
               "asynchrony": "async study: async, ssp and fedbuff against heavy-tailed "
                             "stragglers",
               "faults": "faults study: time to target against message loss and crashes",
               "byzantine": "byzantine study: accuracy against the number of adversaries",
               "transformer": "gpt or vit study: the metric against steps, time and bits",
               "collectives": "collectives study: a step's communication against the workers",
               "fair": "fair study: D-Lion's speed-up over overlapped G-AdamW against the NIC",
               "local": "local study: D-Lion, G-AdamW and DiLoCo, time to target against "
                        "bandwidth"}


def _incomplete_sweeps(directory) -> list[str]:
    """'4 of 14 points of the sweep in DIR are finished ...' for a sweep not yet complete."""
    from plots.data import sweep_progress

    progress = sweep_progress(directory)
    if progress is None or progress[0] >= progress[1]:
        return []
    return [f"only {progress[0]} of the {progress[1]} points of the sweep in {directory} are "
            "finished; the figure shows those (run the sweep again to complete it)"]


def _step_range(text: str | None) -> tuple[int, int] | None:
    """'5' -> (5, 5); '5-8' -> (5, 8); None stays None."""
    if text is None:
        return None
    first, _, last = text.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise SpecError(f"--steps {text!r}: give a step or a range of steps, e.g. 5 or 5-8") \
            from None


def cmd_list(args) -> int:
    import models
    from sim import methods
    from sim.peers import STEP_COLLECTIVES

    what = args.what
    if what == "keys":
        for line in _key_lines():
            print(line)
        return 0
    if what in ("specs", "all"):
        print("bundled specs (dlion-sim run|sweep NAME):")
        for name, summary in _bundled_specs():
            print(f"  {name:14s} {summary}")
    if what in ("methods", "all"):
        print("methods:")
        for m in methods.METHODS.values():
            print(f"  {m.name:12s} {m.description}")
            print(f"  {'':12s} wire: {m.wire}; collectives: {_collectives_text(m)}")
            if args.verbose and m.notes:
                print(f"  {'':12s} differences from the reference:")
                for note in m.notes.splitlines():
                    print(textwrap.fill(note, 96, initial_indent=" " * 17 + "- ",
                                        subsequent_indent=" " * 19,
                                        break_on_hyphens=False))
    if what in ("objectives", "all"):
        print("objectives:")
        for name, (_, description) in sorted(models.REGISTRY.items()):
            print(f"  {name:14s} {description}")
    if what in ("presets", "all"):
        from sim.net import presets

        print("presets:")
        for line in presets.describe():
            print(f"  {line}")
    if what in ("collectives", "all"):
        print("collectives:")
        for name, description in STEP_COLLECTIVES.items():
            print(f"  {name:17s} {description}")
    if what == "all":
        print("spec keys: dlion-sim list keys")
    return 0


def _collectives_text(method) -> str:
    """'auto (the fastest of ring, tree, hierarchical), ps, ...': what a method can use, and
    what the default, auto, chooses among."""
    from sim.tuner import NCCL_ALLREDUCE

    others = [c for c in method.collectives if c != "auto"]
    if "auto" not in method.collectives:
        return ", ".join(others)
    among = [c for c in others if c in NCCL_ALLREDUCE] if "ring" in others else others
    return f"auto (the fastest of {', '.join(among)}; hierarchical on GPU nodes), " + \
        ", ".join(others)


def _bundled_specs() -> list[tuple[str, str]]:
    """(name, the first sentence of its leading comment) of every bundled spec."""
    import re

    from experiments.spec import bundled_names, bundled_spec

    out = []
    for name in bundled_names():
        comment = []
        for line in bundled_spec(name).read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        sentence = re.split(r"(?<=[.?!])\s", " ".join(comment), maxsplit=1)[0]
        out.append((name, sentence if len(sentence) <= 100 else sentence[:99] + "…"))
    return out


def _key_lines() -> list[str]:
    """Every spec key with its default, unit, range and meaning, from the validator's tables."""
    from experiments.spec import SCHEMA, describe_range, method_keys
    from sim.units import format_quantity

    names = {"objective": "default 'logistic'; one of `dlion-sim list objectives`; the other "
                          "keys are the objective's own parameters (docs/objectives.md)",
             "method": "default 'dlion'; one of `dlion-sim list methods`"}
    lines = []
    for section, fields in [("objective", {}), ("method", method_keys()), *SCHEMA.items()]:
        lines.append(f"[{section}]")
        if section in names:
            lines.append(f"  {'name':16s} {names[section]}")
        for key, field in fields.items():
            if field.default is not None:
                default = format_quantity(field.default, field.kind)
            else:
                default = "depends on the method" if section == "method" else "unset"
            if field.kind == "choice":
                allowed = "one of " + ", ".join(map(str, field.choices))
            else:
                allowed = describe_range(field, technical=False)
            lines.append(f"  {key:16s} {field.doc}")
            lines.append(f"  {'':16s} default {default}; {field.kind}; {allowed}"
                         + ("; or one value per worker" if field.per_worker else ""))
    return lines


def cmd_demo(args) -> int:
    """The quickstart study, then a small bandwidth study and a traced straggler run."""
    from experiments.results import load
    from experiments.spec import bundled_spec, load_toml
    from experiments.sweep import run_sweep
    from plots.bandwidth import plot_bandwidth
    from plots.curves import plot_curves
    from plots.timeline import plot_timeline

    out = Path(args.output)
    tour = [
        ("quickstart", "D-Lion (MaVo, Avg), G-Lion and G-AdamW on logistic regression, 8 workers "
                       "on a 1 Gb/s star, messages sized for ResNet-50"),
        ("tour", "time to a target loss from 100 Mb/s to 100 Gb/s, messages sized for GPT-2 "
                 "small"),
        ("stragglers", "six traced steps with jitter and stragglers: D-Lion against G-AdamW"),
    ]
    runs = {}
    for i, (name, what) in enumerate(tour, start=1):
        print(f"[{i}/{len(tour)}] {name}: {what}")
        with _second_interrupt_exits():
            records = run_sweep(load_toml(bundled_spec(name)), out / name, jobs=args.jobs,
                                progress=_progress())
        runs[name] = [r["dir"] for r in records]
    figures = [
        plot_curves(runs["quickstart"], out / "quickstart.png", metric="eval_loss",
                    title="Quickstart: logistic regression, 8 workers, 1 Gb/s star, "
                          "messages sized for a 25.6M-parameter model"),
        plot_bandwidth(runs["tour"], out / "bandwidth.png"),
        plot_timeline(runs["stragglers"], out / "timeline.png",
                      title="Six steps with jitter and stragglers (3x slower with probability "
                            "0.1): 8 workers, 1 Gb/s, ResNet-50-sized messages"),
    ]
    del figures
    print("quickstart results:")
    for directory in runs["quickstart"]:
        s = load(directory).summary
        method = s["spec"]["method"]
        key = method["name"] + (f"/{method['aggregate']}" if method["name"] == "dlion" else "")
        print(f"  {key:11s} final loss {s['final']['loss']:.4f}  simulated {s['sim_time_s']:8.2f} s"
              f"  {s['bits_per_param_per_step']['total']:5.1f} bits/param/step")
    for name in ("quickstart.png", "bandwidth.png", "timeline.png"):
        print(f"wrote {out / name}")
    return 0


def cmd_explore(args) -> int:
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:
        raise SpecError("the explorer needs the explore extra: pip install 'dlion-sim[explore]' "
                        "(from a clone: pip install '.[explore]')")
    if not 0 <= args.port <= 65535:
        raise SpecError(f"--port {args.port}: expected a port from 1 to 65535 (0: any free one)")
    from experiments.explore.server import serve

    return serve(args.port, open_browser=not args.no_browser)


SPEC_HELP = ("a TOML spec file, or the name of a bundled spec (dlion-sim list specs), e.g. "
             "quickstart; its keys: dlion-sim list keys")


def _add_overrides(parser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec key (TOML value), e.g. --set "
                             "network.bandwidth=10Gbps; a whole section with a table, e.g. "
                             "--set 'method={name=\"gadamw\", lr=1e-3}'; switching "
                             "method.name drops the keys the new method does not take; a key "
                             "the [sweep] varies is pinned to the value; repeatable")
    parser.add_argument("--unset", action="append", default=[], metavar="KEY",
                        help="remove a key (section.key) or a whole section from the spec, so "
                             "its default applies; repeatable")


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line like every other error (usage: --help)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"dlion-sim: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dlion-sim",
        description="Co-simulate Distributed Lion and other optimizers on a simulated network.")
    from sim import __version__

    parser.add_argument("--version", action="version", version=f"dlion-sim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one experiment from a TOML spec")
    run.add_argument("spec", help=SPEC_HELP)
    run.add_argument("-o", "--output",
                     help="run directory (default: runs/<spec name>, or runs/<spec name>-<hash> "
                          "when --set/--unset change the spec); one holding a run of another "
                          "spec is refused unless --force; the same spec is run again")
    _add_overrides(run)
    run.add_argument("--force", action="store_true",
                     help="replace a finished run of another spec in the run directory")
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="run every point of a spec's [sweep] table",
                           description="Run every point of the spec's [sweep] table, each into "
                                       "its own directory named by the hash of its resolved "
                                       "spec; finished points are skipped, so an interrupted "
                                       "sweep resumes. Ctrl-C cancels the points left.")
    sweep.add_argument("spec", help=SPEC_HELP)
    sweep.add_argument("-o", "--output",
                       help="sweep directory (default: runs/<spec name>, or runs/<spec "
                            "name>-<hash> when --set/--unset change the spec); one holding "
                            "another study is refused unless --force")
    _add_overrides(sweep)
    sweep.add_argument("--force", action="store_true",
                       help="add the runs to a directory that holds another study")
    sweep.add_argument("--jobs", type=int, default=None,
                       help="parallel processes, or LocalCluster workers with --dask local "
                            "(default: number of cores)")
    sweep.add_argument("--dask", metavar="ADDRESS",
                       help="run on a Dask scheduler (tcp://HOST:PORT), or 'local' to start a "
                            "LocalCluster; needs pip install 'dlion-sim[dask]'")
    sweep.add_argument("--shard", metavar="I/N",
                       help="run only the I-th of N interleaved pieces of the grid")
    sweep.set_defaults(func=cmd_sweep)

    merge = sub.add_parser("merge", help="put sweep directories run in pieces together")
    merge.add_argument("output", help="sweep directory to merge into (created if missing)")
    merge.add_argument("pieces", nargs="*", metavar="DIR",
                       help="sweep directories to take runs from (none: just rewrite the table)")
    merge.add_argument("--move", action="store_true", help="move run directories, not copy")
    merge.set_defaults(func=cmd_merge)

    plot = sub.add_parser("plot", help="draw figures from a run or sweep directory")
    plot.add_argument("directory")
    plot.add_argument("--kind", default="curves",
                      choices=["curves", "tradeoff", "bandwidth", "heatmap", "timeline", "sweep",
                               *STUDY_KINDS],
                      help="curves: a metric over training; tradeoff: final metric against "
                           "bits/param/step; bandwidth: time-to-target against bandwidth; "
                           "heatmap: D-Lion's speed-up over G-AdamW per bandwidth and workers; "
                           "timeline: Gantt chart of a few steps (needs run.trace=true); "
                           "sweep: final metric against a swept key (--key); "
                           + "; ".join(f"{k}: {v}" for k, v in STUDY_KINDS.items()))
    plot.add_argument("--metric", help="history column or evaluation metric (train_loss, "
                                       "eval_loss or loss, eval_accuracy, ...)")
    plot.add_argument("--x", choices=["step", "time", "bits"],
                      help="curves: one x axis only (default: all three panels)")
    plot.add_argument("--target", type=float,
                      help="time to this value of --metric (default: the runs' run.target)")
    plot.add_argument("--steps", help="timeline: which steps, e.g. 5 or 5-8 (default: 1-3)")
    plot.add_argument("--bits", choices=["total", "steady"],
                      help="tradeoff: bits per parameter over the whole run (default) or the "
                           "steady state after each method's warm-up")
    plot.add_argument("--method", help="heatmap: method key (default: dlion/mavo)")
    plot.add_argument("--baseline", help="heatmap: baseline method key (default: gadamw)")
    plot.add_argument("--key", help="sweep: the swept spec key on the x axis "
                                    "(default: cluster.workers)")
    plot.add_argument("--series", help="sweep: a spec key whose values are the lines "
                                       "(default: the method), e.g. method.tie")
    plot.add_argument("-o", "--output",
                      help="figure file; .png, .svg or .pdf (default: DIR/KIND.png)")
    plot.set_defaults(func=cmd_plot)

    summary = sub.add_parser("summary", help="the answer on the terminal: time to target, final "
                                             "metric, bits and speed-up per setting and method",
                             description="One aligned row per setting (the swept keys other "
                                         "than the method) and method of a sweep or run "
                                         "directory: time to target (simulated), steps to it, "
                                         "final metric, bits/param/step, the collective used "
                                         "and the speed-up over a baseline in the same "
                                         "setting. Reads the runs' summary.json files only.")
    summary.add_argument("directory", help="a sweep directory (or a run directory)")
    summary.add_argument("--csv", metavar="FILE",
                         help="also write the table as CSV, numbers at full precision")
    summary.add_argument("--baseline", metavar="METHOD",
                         help="method key or name the speed-up is over, e.g. gadamw or "
                              "dlion/mavo (default: gadamw when it ran, else no speed-up)")
    summary.add_argument("--all-tuned", action="store_true",
                         help="in a sweep with a [tune] table: a row for every value tried "
                              "(default: each setting and method at its best value)")
    summary.set_defaults(func=cmd_summary)

    lst = sub.add_parser("list", help="list spec keys, bundled specs, methods, objectives, "
                                      "presets or collectives")
    lst.add_argument("what", nargs="?", default="all",
                     choices=["all", "keys", "specs", "methods", "objectives", "presets",
                              "collectives"],
                     help="keys: every spec key with its default, unit, range and meaning; "
                          "specs: the bundled specs (default: everything but keys)")
    lst.add_argument("-v", "--verbose", action="store_true",
                     help="methods: also how each differs from its reference implementation")
    lst.set_defaults(func=cmd_list)

    demo = sub.add_parser("demo", help="a short tour: the quickstart study, a small bandwidth "
                                       "study and a straggler timeline, with their figures")
    demo.add_argument("-o", "--output", default="demo", help="output directory (default: demo)")
    demo.add_argument("--jobs", type=int, default=None)
    demo.set_defaults(func=cmd_demo)

    explore = sub.add_parser("explore", help="the explorer: sliders for the network, the workers "
                                             "and the methods in the browser, the answer redrawn "
                                             "live (needs the explore extra)")
    explore.add_argument("--port", type=int, default=8765,
                         help="serve at http://127.0.0.1:PORT/ (default: 8765; 0: any free port)")
    explore.add_argument("--no-browser", action="store_true",
                         help="do not open a browser tab (print the address only)")
    explore.set_defaults(func=cmd_explore)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``dlion-sim`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as err:
        print(f"dlion-sim: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as err:  # str() of a bare Ctrl-C is empty
        print(f"dlion-sim: {str(err) or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:  # the file system refused something no check could foresee
        where = f": {err.filename}" if err.filename else ""
        print(f"dlion-sim: error: {err.strerror or err}{where}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
