"""Labels beside scatter points that overlap neither each other nor the points, inside the axes.

Points closer than a few pixels share one label ('Top-k / GradDrop'). Each label takes the
first free place among candidates tried in order: right of its point, left of it, then ever
further above and below on either side; a place is free when it stays inside the axes and
touches no marker and no label placed before. A label away from its point gets a thin leader
line. Works in display pixels after a draw, then stores positions in data coordinates, so call
it once the axes' limits and layout are final.
"""
from __future__ import annotations

import numpy as np

#: Points closer than this (pixels) share a label.
SAME_PLACE_PX = 4.0
#: Gap between a point and its label, and around every label (pixels).
GAP_PX = 5.0
#: How many label heights above and below a point the search goes.
MAX_SHIFTS = 12


def merge_close(xy_px: np.ndarray, radius: float = SAME_PLACE_PX) -> list[list[int]]:
    """Groups of point indices whose display positions lie within ``radius`` of each other
    (single linkage), in order of their first member."""
    groups: list[list[int]] = []
    for i, p in enumerate(xy_px):
        near = [g for g in groups if any(np.hypot(*(p - xy_px[j])) <= radius for j in g)]
        merged = [i] + [j for g in near for j in g]
        groups = [g for g in groups if g not in near] + [sorted(merged)]
    return sorted(groups, key=lambda g: g[0])


def _overlap(a, b) -> float:
    """Overlap area of two boxes (x0, y0, x1, y1)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def candidates(anchor, size, offset: float, gap: float = GAP_PX, shifts: int = MAX_SHIFTS):
    """Boxes (x0, y0, x1, y1) for a label of ``size`` (w, h) ``offset`` pixels beside
    ``anchor``, best first."""
    (x, y), (w, h) = anchor, size
    for k in range(shifts + 1):
        for dy in ((0,) if k == 0 else (k, -k)):
            for x0 in (x + offset, x - offset - w):
                y0 = y - h / 2 + dy * (h + gap)
                yield (x0, y0, x0 + w, y0 + h)


def choose(anchor, size, taken: list, bounds, offset: float, gap: float = GAP_PX):
    """The first candidate inside ``bounds`` touching nothing in ``taken`` (boxes, each grown
    by ``gap``); failing that, the one with the least overlap."""
    best, best_cost = None, np.inf
    for box in candidates(anchor, size, offset, gap):
        outside = box[0] < bounds[0] or box[1] < bounds[1] or box[2] > bounds[2] or \
            box[3] > bounds[3]
        if outside:
            continue
        grown = (box[0] - gap, box[1] - gap, box[2] + gap, box[3] + gap)
        cost = sum(_overlap(grown, other) for other in taken)
        if cost == 0:
            return box
        if cost < best_cost:
            best, best_cost = box, cost
    return best if best is not None else next(candidates(anchor, size, offset, gap))


def place(ax, xy, labels: list[str], colors: list[str], fontsize: float = 8,
          marker_px: float = 7.0) -> list:
    """Label the data points ``xy`` (n, 2) of ``ax``; returns the Text artists drawn.

    ``marker_px``: half the size of a marker (pixels), the room each point keeps for itself.
    Labels of points sharing a place are joined with ' / ' and drawn in a neutral colour.
    """
    fig = ax.figure
    ax.autoscale(False)  # leader lines must not move the limits the labels were placed in
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(np.asarray(xy, dtype=float))
    frame = ax.get_window_extent(renderer)
    bounds = (frame.x0 + 2, frame.y0 + 2, frame.x1 - 2, frame.y1 - 2)
    taken = [(x - marker_px, y - marker_px, x + marker_px, y + marker_px) for x, y in points]
    to_data = ax.transData.inverted().transform
    texts = []
    for group in merge_close(points):
        anchor = points[group].mean(axis=0)
        names = list(dict.fromkeys(labels[i] for i in group))
        color = colors[group[0]] if len(names) == 1 else "0.2"
        artist = ax.text(*xy[group[0]], " / ".join(names), fontsize=fontsize, color=color,
                         va="bottom", ha="left", gid="point-label")
        extent = artist.get_window_extent(renderer)
        box = choose(anchor, (extent.width, extent.height), taken, bounds, marker_px + GAP_PX)
        taken.append(box)
        artist.set_position(to_data((box[0], box[1])))
        texts.append(artist)
        centre_y = (box[1] + box[3]) / 2
        if abs(centre_y - anchor[1]) > extent.height / 2:  # away from its point: a leader
            end_x = box[0] if box[0] > anchor[0] else box[2]
            ax.plot(*to_data([anchor, (end_x, centre_y)]).T, color="0.6", lw=0.6, zorder=1,
                    gid="leader")
    return texts
