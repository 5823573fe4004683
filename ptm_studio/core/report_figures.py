"""Figures for the HTML report as inline SVG and HTML: line charts, the reliability diagram,
the confusion matrix. Plain strings, no plotting library: the report must open offline in any
browser, and every user-supplied name is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from ptm_studio.core.calibration import ReliabilityBin
from ptm_studio.core.metrics import row_normalised

WIDTH, HEIGHT = 460, 260
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 14, 30, 40
LEGEND_Y = 14  # above the plot, so it never hides a line
# Okabe–Ito, as in the window: train blue, validation orange.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7")
CORRECT_RGB, WRONG_RGB = (46, 157, 79), (217, 68, 58)


@dataclass(frozen=True)
class Series:
    name: str
    x: Sequence[float]
    y: Sequence[float]


def _finite_points(series: Series) -> list[tuple[float, float]]:
    return [
        (float(x), float(y))
        for x, y in zip(series.x, series.y, strict=True)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]


def _ticks(low: float, high: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """Round tick values between ``low`` and ``high``; ``whole`` ones only (epochs)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    if whole:
        step = max(1.0, round(step))
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.1e}"


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    whole_x: bool = False,
) -> str:
    """An SVG line chart of the finite points of each series, with axes, ticks and a legend;
    ``whole_x`` for whole-number x values such as epochs."""
    points = [_finite_points(item) for item in series]
    every = [point for chart in points for point in chart]
    if not every:
        return f'<p class="empty">{escape(title)}: nothing was logged.</p>'
    x_low, x_high = min(p[0] for p in every), max(p[0] for p in every)
    if y_range is None:
        y_low, y_high = min(p[1] for p in every), max(p[1] for p in every)
        pad = 0.05 * (y_high - y_low)  # lines clear of the frame
        y_low, y_high = y_low - pad, y_high + pad
    else:
        y_low, y_high = y_range
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    if y_high == y_low:
        y_low, y_high = y_low - 1, y_high + 1
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def sx(x: float) -> float:
        return MARGIN_LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return MARGIN_TOP + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    parts = [_svg_open(title), _axes(plot_w, plot_h, x_label, y_label)]
    for tick in _ticks(y_low, y_high):
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_w}" y1="{sy(tick):.1f}" '
            f'y2="{sy(tick):.1f}" class="grid"/><text x="{MARGIN_LEFT - 6}" y="{sy(tick) + 4:.1f}" '
            f'text-anchor="end">{_label(tick)}</text>'
        )
    for tick in _ticks(x_low, x_high, whole=whole_x):
        parts.append(
            f'<text x="{sx(tick):.1f}" y="{MARGIN_TOP + plot_h + 16}" text-anchor="middle">'
            f"{_label(tick)}</text>"
        )
    for index, (item, chart) in enumerate(zip(series, points, strict=True)):
        colour = COLOURS[index % len(COLOURS)]
        if len(chart) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in _thin(chart))
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        else:
            x, y = chart[0] if chart else (x_low, y_low)
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        parts.append(_legend_entry(index, item.name, colour))
    parts.append("</svg>")
    return "".join(parts)


def _thin(points: list[tuple[float, float]], limit: int = 600) -> list[tuple[float, float]]:
    """At most ``limit`` points (every n-th, the last kept): a long run stays a small file."""
    if len(points) <= limit:
        return points
    step = math.ceil(len(points) / limit)
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])


def _svg_open(title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    )


def _axes(plot_w: float, plot_h: float, x_label: str, y_label: str) -> str:
    bottom = MARGIN_TOP + plot_h
    return (
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" '
        'class="frame"/>'
        f'<text x="{MARGIN_LEFT + plot_w / 2}" y="{bottom + 34}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(14 {MARGIN_TOP + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )


def _legend_entry(index: int, name: str, colour: str) -> str:
    x = MARGIN_LEFT + 140 * index
    return (
        f'<rect x="{x}" y="{LEGEND_Y - 9}" width="12" height="12" fill="{colour}"/>'
        f'<text x="{x + 16}" y="{LEGEND_Y + 1}">{escape(name)}</text>'
    )


def reliability_chart(
    before: Sequence[ReliabilityBin], after: Sequence[ReliabilityBin] | None
) -> str:
    """Bars of how often the model was right at each confidence, before (grey) and after
    (blue) calibration, against the dashed diagonal of an honest model; ``after`` None when
    no temperature was fitted (then one series)."""
    plot_w, plot_h = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    parts = [
        _svg_open("Reliability: confidence against how often the model was right"),
        _axes(plot_w, plot_h, "Confidence the model gave (%)", "How often it was right (%)"),
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP + plot_h}" x2="{MARGIN_LEFT + plot_w}" '
        f'y2="{MARGIN_TOP}" stroke="#D55E00" stroke-dasharray="6 4"/>',
    ]
    for tick in range(0, 101, 20):
        y = MARGIN_TOP + (1 - tick / 100) * plot_h
        x = MARGIN_LEFT + tick / 100 * plot_w
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
        parts.append(
            f'<text x="{x:.1f}" y="{MARGIN_TOP + plot_h + 16}" text-anchor="middle">{tick}</text>'
        )
    series = (
        [(0, before, "#999999"), (1, after, COLOURS[0])]
        if after is not None
        else [(0, before, COLOURS[0])]
    )
    for side, bins, colour in series:
        for item in bins:
            if not item.count or not math.isfinite(item.accuracy):
                continue
            width = (item.upper - item.lower) * plot_w / len(series) * 0.9
            x = MARGIN_LEFT + item.lower * plot_w + side * width + 0.05 * width
            height = item.accuracy * plot_h
            parts.append(
                f'<rect x="{x:.1f}" y="{MARGIN_TOP + plot_h - height:.1f}" width="{width:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{item.count} pictures, '
                f"{100 * item.mean_confidence:.0f} % confident, {100 * item.accuracy:.0f} % right"
                "</title></rect>"
            )
    if after is None:
        parts.append(_legend_entry(0, "the model's confidence", COLOURS[0]))
    else:
        parts.append(_legend_entry(0, "before calibration", "#999999"))
        parts.append(_legend_entry(1, "after calibration", COLOURS[0]))
    parts.append("</svg>")
    return "".join(parts)


def confusion_table(class_names: Sequence[str], matrix: np.ndarray) -> str:
    """An HTML table: true classes down, answers across; shade = share of the row."""
    shares = row_normalised(matrix)
    header = "".join(f"<th>→ {escape(name)}</th>" for name in class_names)
    rows = []
    for true, name in enumerate(class_names):
        cells = []
        for predicted in range(len(class_names)):
            share = float(shares[true, predicted])
            red, green, blue = CORRECT_RGB if true == predicted else WRONG_RGB
            alpha = 0.08 + 0.82 * share if share > 0 else 0.0
            cells.append(
                f'<td style="background: rgba({red},{green},{blue},{alpha:.2f})" '
                f'title="{100 * share:.0f} % of the {escape(name)} pictures">'
                f"{int(matrix[true, predicted])}</td>"
            )
        rows.append(f"<tr><th>{escape(name)}</th>{''.join(cells)}</tr>")
    return (
        '<table class="confusion"><tr><th>true ↓ / answered →</th>'
        f"{header}</tr>{''.join(rows)}</table>"
    )
