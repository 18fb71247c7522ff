"""The ``dlion-sim`` command line: run, sweep, merge, plot, list, demo."""
from __future__ import annotations

import argparse
import os
import sys
import textwrap
from importlib import resources
from pathlib import Path

from experiments.spec import SpecError

EXIT_USAGE = 2


def _bundled(name: str) -> Path | None:
    """A spec shipped with the package (``experiments/NAME.toml``), if there is one."""
    candidate = resources.files("experiments").joinpath(f"{Path(name).stem}.toml")
    return Path(str(candidate)) if candidate.is_file() else None


def _spec_path(text: str) -> Path:
    path = Path(text)
    if path.exists():
        return path
    bundled = _bundled(text) if path.suffix in ("", ".toml") and path.parent == Path(".") else None
    if bundled is not None:
        return bundled
    raise SpecError(f"spec file {text!r} does not exist (bundled specs: "
                    f"{', '.join(sorted(_bundled_names()))})")


def _bundled_names():
    return [p.name[:-5] for p in resources.files("experiments").iterdir()
            if p.name.endswith(".toml")]


def _progress() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def cmd_run(args) -> int:
    from experiments.run import execute
    from experiments.spec import load_toml, resolve, with_assignments

    path = _spec_path(args.spec)
    raw = with_assignments(load_toml(path), args.set)
    if "sweep" in raw:
        raise SpecError(f"{path} has a [sweep] table: run it with `dlion-sim sweep {args.spec}`")
    spec = resolve(raw)
    out = Path(args.output or Path("runs") / path.stem)
    if out.exists() and not out.is_dir():  # found out now, not after the whole run
        raise SpecError(f"-o {str(out)!r} is a file; give a directory for the run")
    result = execute(spec, progress=_progress(), label=path.stem)
    result.save(out)
    s = result.summary
    final = ", ".join(f"{k} {v:.4g}" for k, v in s["final"].items() if isinstance(v, float))
    steady = s["steady_bits_per_param_per_step"]["total"]
    after = "" if s["steady_from_step"] == 1 or steady is None else \
        f" ({steady:.3g} from step {s['steady_from_step']}, after the method's warm-up)"
    print(f"{s['status']}: {s['steps']} steps, {s['sim_time_s']:.4g} s simulated, "
          f"{s['bits_per_param_per_step']['total']:.3g} bits/param/step{after}; {final}")
    print(f"wrote {out}")
    return 0


def cmd_sweep(args) -> int:
    from experiments.spec import load_toml, with_assignments
    from experiments.sweep import parse_shard, run_sweep

    path = _spec_path(args.spec)
    raw = with_assignments(load_toml(path), args.set)
    if args.jobs is not None and args.jobs < 1:
        raise SpecError(f"--jobs {args.jobs}: expected a whole number >= 1")
    shard = parse_shard(args.shard) if args.shard else None
    out = Path(args.output or Path("runs") / path.stem)
    records = run_sweep(raw, out, jobs=args.jobs, progress=_progress(), dask=args.dask,
                        shard=shard)
    failed = [r for r in records if r["status"].startswith("failed")]
    skipped = sum(r["status"] == "done before" for r in records)
    piece = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    for r in failed:
        print(f"  {r['dir']}: {r['status']}", file=sys.stderr)
    print(f"{len(records)} runs{piece} in {out} ({skipped} already done, {len(failed)} failed); "
          f"table {out / 'runs.csv'}")
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
             "sweep": {"metric", "target", "key", "series"}}
    given = {k for k in ("metric", "x", "target", "steps", "method", "baseline", "key", "series",
                         "bits") if getattr(args, k) is not None}
    if given - takes[args.kind]:
        raise SpecError(f"--kind {args.kind} does not take "
                        f"{', '.join('--' + k for k in sorted(given - takes[args.kind]))}; "
                        f"it takes: {', '.join('--' + k for k in sorted(takes[args.kind]))}")
    out = Path(args.output or Path(args.directory) / f"{args.kind}.png")
    try:
        if args.kind == "curves":
            curves.plot_curves(args.directory, out, metric=args.metric or "train_loss",
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
        else:
            timeline.plot_timeline(args.directory, out, steps=_step_range(args.steps))
    except PlotError as err:
        raise SpecError(str(err)) from None
    print(f"wrote {out}")
    return 0


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
    from sim.cluster import STEP_COLLECTIVES

    what = args.what
    if what in ("methods", "all"):
        print("methods:")
        for m in methods.METHODS.values():
            print(f"  {m.name:12s} {m.description}")
            print(f"  {'':12s} wire: {m.wire}; collectives: {', '.join(m.collectives)}")
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
    return 0


def cmd_demo(args) -> int:
    """The quickstart study, then a small bandwidth study and a traced straggler run."""
    from experiments.results import load
    from experiments.spec import load_toml
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
        records = run_sweep(load_toml(_bundled(name)), out / name, jobs=args.jobs,
                            progress=_progress())
        runs[name] = [r["dir"] for r in records]
    figures = [
        plot_curves(runs["quickstart"], out / "quickstart.png", metric="eval_loss",
                    title="Quickstart: logistic regression, 8 workers, 1 Gb/s star, "
                          "messages sized for a 25.6M-parameter model"),
        plot_bandwidth(runs["tour"], out / "bandwidth.png"),
        plot_timeline(runs["stragglers"], out / "timeline.png"),
    ]
    del figures
    print("quickstart results:")
    for directory in runs["quickstart"]:
        s = load(directory).summary
        method = s["spec"]["method"]
        key = method["name"] + (f"/{method['aggregate']}" if "aggregate" in method else "")
        print(f"  {key:11s} final loss {s['final']['loss']:.4f}  simulated {s['sim_time_s']:8.2f} s"
              f"  {s['bits_per_param_per_step']['total']:5.1f} bits/param/step")
    for name in ("quickstart.png", "bandwidth.png", "timeline.png"):
        print(f"wrote {out / name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlion-sim",
        description="Co-simulate Distributed Lion and other optimizers on a simulated network.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one experiment from a TOML spec")
    run.add_argument("spec", help="spec file, or the name of a bundled spec (e.g. quickstart)")
    run.add_argument("-o", "--output", help="run directory (default: runs/<spec name>)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec key, e.g. --set network.bandwidth=10Gbps")
    run.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="run every point of a spec's [sweep] table")
    sweep.add_argument("spec")
    sweep.add_argument("-o", "--output", help="sweep directory (default: runs/<spec name>)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
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
                      choices=["curves", "tradeoff", "bandwidth", "heatmap", "timeline", "sweep"],
                      help="curves: a metric over training; tradeoff: final metric against "
                           "bits/param/step; bandwidth: time-to-target against bandwidth; "
                           "heatmap: D-Lion's speed-up over G-AdamW per bandwidth and workers; "
                           "timeline: Gantt chart of a few steps (needs run.trace=true); "
                           "sweep: final metric against a swept key (--key)")
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

    lst = sub.add_parser("list", help="list methods, objectives, presets or collectives")
    lst.add_argument("what", nargs="?", default="all",
                     choices=["all", "methods", "objectives", "presets", "collectives"])
    lst.add_argument("-v", "--verbose", action="store_true",
                     help="methods: also how each differs from its reference implementation")
    lst.set_defaults(func=cmd_list)

    demo = sub.add_parser("demo", help="a short tour: the quickstart study, a small bandwidth "
                                       "study and a straggler timeline, with their figures")
    demo.add_argument("-o", "--output", default="demo", help="output directory (default: demo)")
    demo.add_argument("--jobs", type=int, default=None)
    demo.set_defaults(func=cmd_demo)
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
    except KeyboardInterrupt:
        print("dlion-sim: interrupted; finished runs are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
