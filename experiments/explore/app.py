"""The explorer's page (a Bokeh document): a widget per row of ``controls.CONTROLS``, the views
redrawn after every change, and the view as a spec to copy.

Every change builds the spec (``controls.spec``), validates it with the project's own
``resolve`` (a refused value is answered in the status line, in one line) and hands it to the
``Runner``, which cancels what was running. Results reach the page through
``doc.add_next_tick_callback``, the one way another thread may change a document.
"""
from __future__ import annotations

import html
from functools import partial

from bokeh.layouts import column, row
from bokeh.models import (Button, CategoricalSlider, Checkbox, CustomJS, Div, PreText, Select,
                          Slider)

from experiments.explore import controls
from experiments.explore.runner import Job, Runner
from experiments.spec import SpecError
from plots.answer import answers, sentence, table_html, target_text
from plots.live import Curves, Timeline
from plots.style import method_key

#: width of the controls' column, px
CONTROLS_WIDTH = 330
#: how often the status line shows a running job's progress, ms
PROGRESS_MS = 250


def _widget(control: controls.Control, value, method: str | None = None):
    """The Bokeh widget of ``control`` showing ``value``."""
    if control.kind in ("int", "number"):
        return Slider(title=control.label, start=control.low, end=control.high,
                      step=control.step, value=value, width=CONTROLS_WIDTH - 20,
                      format="0" if control.kind == "int" else "0[.]00")
    labels = dict(controls.options(control, method))
    if control.kind == "ladder":
        return CategoricalSlider(title=control.label, categories=list(labels.values()),
                                 value=labels[value], width=CONTROLS_WIDTH - 20)
    title = "" if control.per_method else control.label
    return Select(title=title, options=list(labels.values()), value=labels[value],
                  width=110 if control.per_method else CONTROLS_WIDTH - 20)


def _value(control: controls.Control, widget, method: str | None = None):
    """The spec value ``widget`` shows for ``control``."""
    if control.kind == "int":
        return int(round(widget.value))
    if control.kind == "number":
        return round(float(widget.value), 6)  # the slider's float steps: 0.07, not 0.0700...01
    by_label = {label: value for value, label in controls.options(control, method)}
    return by_label[widget.value]


class Explorer:
    """One browser tab's page, with its own Runner."""

    def __init__(self, doc):
        self.doc = doc
        self.runner = Runner()
        self.generation = 0
        self.points: list[dict] = []
        self.results: list = []
        self.widgets = {c.key: _widget(c, c.default) for c in controls.CONTROLS
                        if c.per_method is None}
        per_method = [c for c in controls.CONTROLS if c.per_method is not None]
        self.ticks = {v.key: Checkbox(label=v.label, active=v.on, width=170)
                      for v in controls.METHODS}
        self.method_widgets = {
            (v.key, c.key): _widget(c, controls.method_defaults(v.key)[c.key], v.method["name"])
            for v in controls.METHODS for c in per_method
            if len(c.per_method(v.method["name"])) > 1}
        self.status = Div(text="", width=900)
        self.sentence = Div(text="", width=1200, styles={"font-size": "15px"})
        self.table = Div(text="", width=900)
        self.curves = Curves([v.key for v in controls.METHODS])
        self.timeline = Timeline()
        self.timeline_method = Select(title="Timeline of", options=[], width=200)
        self.timeline_step = Slider(title="step", start=1, end=2, step=1, value=2, width=300)
        self.spec_text = PreText(text="", width=820)
        copy = Button(label="Copy as spec", button_type="primary", width=140)
        copy.js_on_click(CustomJS(args={"spec": self.spec_text}, code=(
            "navigator.clipboard.writeText(spec.text)")))
        for control in controls.CONTROLS:
            if control.per_method is None:
                self._listen(self.widgets[control.key])
        for widget in [*self.ticks.values(), *self.method_widgets.values()]:
            self._listen(widget)
        for widget, attribute in ((self.timeline_method, "value"),
                                  (self.timeline_step, "value_throttled")):
            widget.on_change(attribute, lambda attr, old, new: self._redraw_timeline())
        doc.title = "dlion-sim explorer"
        doc.add_root(self._layout(copy))
        doc.add_periodic_callback(self._show_progress, PROGRESS_MS)
        doc.on_session_destroyed(lambda context: self.runner.close())
        self.changed()

    def _listen(self, widget) -> None:
        attribute = {Checkbox: "active", Select: "value"}.get(type(widget), "value_throttled")
        widget.on_change(attribute, lambda attr, old, new: self.changed())

    def _layout(self, copy):
        side = [Div(text="<h2 style='margin:0'>dlion-sim explorer</h2><p style='margin:4px 0'>"
                         f"Logistic regression ({controls.OBJECTIVE['features'] + 1} "
                         "parameters); messages sized as for the model chosen.</p>",
                    width=CONTROLS_WIDTH)]
        group = None
        for control in controls.CONTROLS:
            if control.per_method is None:
                if control.group != group:
                    group = control.group
                    side.append(Div(text=f"<b>{group}</b>", width=CONTROLS_WIDTH))
                side.append(self.widgets[control.key])
        side.append(Div(text="<b>Methods</b>, each with its collective", width=CONTROLS_WIDTH))
        for variant in controls.METHODS:
            picks = [w for (key, _), w in self.method_widgets.items() if key == variant.key]
            side.append(row(self.ticks[variant.key], *picks))
        views = column(self.status, self.sentence, self.table, row(*self.curves.figures),
                       row(self.timeline_method, self.timeline_step), self.timeline.figure,
                       row(copy, Div(text="The TOML below reproduces this view.")),
                       self.spec_text)
        return row(column(*side, width=CONTROLS_WIDTH), views)

    def values(self) -> dict:
        """The global controls' spec values."""
        return {c.key: _value(c, self.widgets[c.key]) for c in controls.CONTROLS
                if c.per_method is None}

    def compared(self) -> list[tuple[str, dict]]:
        """The ticked methods with their per-method values, in the page's order."""
        out = []
        for variant in controls.METHODS:
            if self.ticks[variant.key].active:
                own = {c.key: _value(c, self.method_widgets[variant.key, c.key],
                                     variant.method["name"])
                       for c in controls.CONTROLS if (variant.key, c.key) in self.method_widgets}
                out.append((variant.key, own))
        return out

    def changed(self) -> None:
        """Rebuild the spec from the widgets, validate it, and run it in place of the job
        running; a refused spec is shown in one line and runs nothing."""
        values = self.values()
        for control in controls.CONTROLS:
            if control.per_method is None:
                self.widgets[control.key].visible = controls.applies(control, values)
        try:
            raw = controls.spec(values, self.compared())
            points = controls.points(raw)
        except SpecError as err:
            self.generation = self.runner.cancel()
            self._status("error", f"Not run: {err}")
            return
        self.points, self.results = points, [None] * len(points)
        self.spec_text.text = controls.toml(raw)
        self.curves.target.location = values["run.target"]
        self.curves.hide_all_but(set())
        self.sentence.text = ""
        self.table.text = ""
        self.generation = self.runner.submit(Job(points, *self._handlers()))
        self._status("running", f"Running {len(points)} method(s)...")

    def _handlers(self):
        return self._from_runner(self._result), self._from_runner(self._done), \
            self._from_runner(self._error)

    def _from_runner(self, handler):
        """``handler`` called on the document's thread; answers of stale jobs, or for a page
        already closed, are dropped."""
        def deliver(generation, *args):
            if not self.runner.current(generation):
                return
            try:
                self.doc.add_next_tick_callback(partial(handler, generation, *args))
            except Exception:  # noqa: BLE001 (the tab closed while the job ran)
                self.runner.close()
        return deliver

    def _result(self, generation: int, index: int, result) -> None:
        if generation != self.generation:
            return
        self.results[index] = result
        key = method_key(self.points[index])
        self.curves.show(key, result)
        done = [r for r in self.results if r is not None]
        self.table.text = table_html(answers(done))
        labels = [controls.VARIANTS[method_key(p)].label for p in self.points]
        self.timeline_method.options = labels
        if self.timeline_method.value not in labels:
            self.timeline_method.value = labels[index]
        self._redraw_timeline()

    def _done(self, generation: int, wall_s: float) -> None:
        if generation != self.generation:
            return
        self.sentence.text = html.escape(sentence(answers(self.results),
                                                  target_text(self.results)))
        self._status("done", f"{len(self.results)} method(s) simulated in {wall_s:.2f} s of "
                             "wall-clock time.")

    def _error(self, generation: int, index: int, message: str) -> None:
        if generation == self.generation:
            self._status("error", f"Not run: {message}")

    def _status(self, state: str, text: str) -> None:
        color = {"error": "#B00000", "running": "#555555"}.get(state, "#1a6e1a")
        self.status.text = (f'<span class="status" data-state="{state}" data-generation='
                            f'"{self.generation}" style="color:{color}">{html.escape(text)}'
                            "</span>")

    def _show_progress(self) -> None:
        generation, index, step = self.runner.progress()
        if generation != self.generation or self.results[index:index + 1] != [None]:
            return
        label = controls.VARIANTS[method_key(self.points[index])].label
        self._status("running", f"Running method {index + 1} of {len(self.points)}, {label}: "
                                f"step {step} of {self.points[index]['run']['steps']}...")

    def _redraw_timeline(self) -> None:
        labels = self.timeline_method.options
        if self.timeline_method.value not in labels:
            return
        result = self.results[labels.index(self.timeline_method.value)]
        if result is None:
            return
        steps = int(result.summary["steps"])
        self.timeline_step.end = max(2, steps)
        step = min(int(self.timeline_step.value), steps)
        self.timeline.show(result, step, self.timeline_method.value)


def make_document(doc) -> None:
    """The Bokeh application's handler: one Explorer per browser tab."""
    Explorer(doc)
