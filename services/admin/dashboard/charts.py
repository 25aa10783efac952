"""Small charts as inline SVG (no script, no library): bars per time bucket, one colour per series."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

WIDTH = 600
HEIGHT = 120
_PAD = 18


def bars(series: Mapping[str, Sequence[float]], *, title: str, unit: str = "") -> Markup:
    """Side-by-side bars of every series over the same buckets (oldest first), with a labelled peak."""
    names = list(series)
    buckets = max((len(values) for values in series.values()), default=0)
    peak = max((max(values, default=0) for values in series.values()), default=0) or 1
    slot = (WIDTH - 2 * _PAD) / max(buckets, 1)
    bar = max(slot / max(len(names), 1) - 0.5, 0.5)
    shapes = []
    for offset, name in enumerate(names):
        for index, value in enumerate(series[name]):
            if value <= 0:
                continue
            height = (HEIGHT - 2 * _PAD) * value / peak
            x = _PAD + index * slot + offset * bar
            y = HEIGHT - _PAD - height
            shapes.append(
                f'<rect class="series-{offset}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}"><title>{escape(name)}: {value:g}{escape(unit)}</title></rect>'
            )
    legend = " · ".join(
        f'<tspan class="series-{offset}">■</tspan> {escape(name)} {sum(series[name]):g}'
        for offset, name in enumerate(names)
    )
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<line class="axis" x1="{_PAD}" y1="{HEIGHT - _PAD}" x2="{WIDTH - _PAD}" y2="{HEIGHT - _PAD}"/>'
        f'<text class="label" x="{_PAD}" y="12">{escape(title)} · peak {peak:g}{escape(unit)}</text>'
        f'<text class="label" x="{WIDTH - _PAD}" y="12" text-anchor="end">{legend}</text>'
        + "".join(shapes)
        + "</svg>"
    )
    return Markup(svg)  # noqa: S704 - every text in it is escaped above
