"""The explorer's figures (Bokeh): evaluation loss against steps, simulated time and bits, one
line per method, and one step's timeline; redrawn from Results as they arrive."""
from __future__ import annotations

from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Legend, LegendItem, Span
from bokeh.plotting import figure

from plots.answer import curve, step_bars
from plots.style import METHOD_COLORS, pretty

#: the three x axes of the curves: (axis, title, label, axis type)
AXES = (("step", "against steps", "step", "linear"),
        ("time", "against simulated time", "simulated time (s, log scale)", "log"),
        ("bits", "against bits sent", "bits sent per worker, up + down (log scale)", "log"))
#: figure sizes, px: one curve panel, the timeline
PANEL = (400, 300)
TIMELINE = (1230, 330)


def _style(fig) -> None:
    fig.title.text_font_size = "13px"
    fig.toolbar.logo = None
    for axis in (fig.xaxis, fig.yaxis):
        axis.axis_label_text_font_style = "normal"
        axis.axis_label_text_font_size = "12px"


class Curves:
    """Three panels sharing the loss axis; a line per method key of ``keys``, shown once that
    method has a result; a dashed line at the target."""

    def __init__(self, keys: list[str]):
        self.sources = {k: ColumnDataSource({"step": [], "time": [], "bits": [], "loss": []})
                        for k in keys}
        self.target = Span(location=0.0, dimension="width", line_dash="dashed",
                           line_color="#444444", line_width=1)
        self.figures = []
        self.lines: dict[str, list] = {k: [] for k in keys}
        for axis, title, label, kind in AXES:
            shared = {"y_range": self.figures[0].y_range} if self.figures else {}
            fig = figure(width=PANEL[0], height=PANEL[1], x_axis_type=kind, title=f"Evaluation "
                         f"loss {title}", x_axis_label=label, y_axis_label="evaluation loss",
                         tools="pan,wheel_zoom,box_zoom,reset,save", **shared)
            _style(fig)
            fig.add_layout(self.target)
            for key, source in self.sources.items():
                color = METHOD_COLORS.get(key, "#000000")
                line = fig.line(axis, "loss", source=source, color=color, line_width=2,
                                visible=False)
                dots = fig.scatter(axis, "loss", source=source, color=color, size=4,
                                   visible=False)
                self.lines[key] += [line, dots]
            self.figures.append(fig)
        self.legend = Legend(items=[LegendItem(label=pretty(k), renderers=self.lines[k][:2],
                                               visible=False) for k in keys],
                             location="top_right", label_text_font_size="11px",
                             background_fill_alpha=0.8, spacing=0, padding=4)
        self.figures[0].add_layout(self.legend)

    def show(self, key: str, run) -> None:
        """Draw ``run``'s curves as method ``key``."""
        data = {axis: curve(run, axis)[0] for axis, *_ in AXES}
        data["loss"] = curve(run, "step")[1]
        self.sources[key].data = data
        self._visible(key, True)

    def hide_all_but(self, keys) -> None:
        for key in self.sources:
            if key not in keys:
                self._visible(key, False)

    def _visible(self, key: str, visible: bool) -> None:
        for renderer in self.lines[key]:
            renderer.visible = visible
        next(i for i in self.legend.items if i.renderers[0] is self.lines[key][0]).visible = \
            visible


class Timeline:
    """One step of one traced run: a bar per phase, a row per node (workers, then the server
    or the collective)."""

    def __init__(self):
        self.source = ColumnDataSource({"node": [], "phase": [], "start": [], "end": [],
                                        "color": [], "height": []})
        self.figure = figure(width=TIMELINE[0], height=TIMELINE[1], y_range=FactorRange(),
                             title="One step", x_axis_label="time since the step began",
                             tools="pan,wheel_zoom,box_zoom,reset,save")
        _style(self.figure)
        self.figure.hbar(y="node", left="start", right="end", height="height", color="color",
                         legend_field="phase", source=self.source, line_color="white",
                         line_width=0.5)
        # an aggregation of no duration (no server cost is set) is still worth seeing
        self.instants = ColumnDataSource({"node": [], "start": [], "color": []})
        self.figure.scatter(x="start", y="node", marker="diamond", size=11, color="color",
                            source=self.instants)
        legend = self.figure.legend[0]
        legend.orientation = "horizontal"
        legend.label_text_font_size = "11px"
        self.figure.add_layout(legend, "above")  # beside the title, never over the bars
        self.figure.yaxis.axis_label = "node"
        self.figure.add_tools(HoverTool(tooltips=[("node", "@node"), ("phase", "@phase"),
                                                  ("from", "@start{0.000}"),
                                                  ("to", "@end{0.000}")]))

    def show(self, run, step: int, label: str) -> None:
        """Draw step ``step`` of ``run`` (method ``label``)."""
        columns, nodes, unit = step_bars(run, step)
        self.figure.y_range.factors = nodes[::-1]  # worker 0 on top, the server at the bottom
        self.source.data = columns
        instant = [i for i, (phase, a, b) in enumerate(zip(columns["phase"], columns["start"],
                                                            columns["end"]))
                   if a == b and phase == "aggregate"]
        self.instants.data = {k: [columns[k][i] for i in instant]
                              for k in ("node", "start", "color")}
        length = max(columns["end"]) if columns["end"] else 0.0
        self.figure.title.text = f"{label}: step {step} of {run.summary['steps']}, " \
                                 f"{length:.3g} {unit}"
        self.figure.xaxis.axis_label = f"simulated time since the step began ({unit})"
        self.figure.height = max(TIMELINE[1], 60 + 16 * len(nodes))
