"""``dlion-sim explore``: the simulator in the browser, one widget per spec key (docs/explore.md).

``controls`` (the table of controls and the spec they make) and ``runner`` (one simulation at
a time, cancelled by the next) need nothing beyond the project; ``app`` (the page) and
``server`` (serving it) need the ``explore`` extra (Bokeh).
"""
