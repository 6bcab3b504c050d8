"""Charts drawn on the server as inline SVG: no JavaScript, nothing from a CDN, and nothing a
strict Content-Security-Policy blocks. Every chart is drawn from a `ReportTable`, whose rows the
page also prints as a table, so what the chart shows and the numbers are the same data.

All text that reaches the SVG (topics come from hostile post text) goes through `escape`.
"""
from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from connector.reports import ReportTable

WIDTH = 760
HEIGHT = 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 12, 10, 34
#: Colour-blind-safe palette (Okabe–Ito), then greys.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
           "#7b8794", "#9fb3c8", "#bcccdc")
#: Fixed colours where the value has a meaning of its own.
VALUE_COLOURS = {"n_negative": "#D55E00", "n_neutral": "#9fb3c8", "n_positive": "#009E73",
                 "n_0": "#bcccdc", "n_1": "#0072B2"}


def _colour(key: str, index: int) -> str:
    return VALUE_COLOURS.get(key, PALETTE[index % len(PALETTE)])


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) or value >= 100 else f"{value:.1f}"


def _frame(table: ReportTable, lang: str, body: list[str], legend: list[tuple[str, str]]) -> Markup:
    title = escape(table.title(lang))
    parts = [f'<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {WIDTH} {HEIGHT + (22 if legend else 0)}" '
             f'xmlns="http://www.w3.org/2000/svg" data-chart="{escape(table.name)}">', f"<title>{title}</title>", *body]
    x = PAD_LEFT
    for label, colour in legend:
        parts.append(f'<rect x="{x}" y="{HEIGHT + 8}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{HEIGHT + 17}" font-size="11">{escape(label)}</text>')
        x += 24 + 7 * len(label) + (6 * sum(1 for ch in label if ord(ch) > 0x2E80))
    parts.append("</svg>")
    return Markup("".join(parts))


def _axes(y_max: float, x_labels: list[str], unit: str = "") -> list[str]:
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    body = []
    for i in range(5):
        value = y_max * i / 4
        y = PAD_TOP + inner_h - inner_h * i / 4
        body.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>'
                    f'<text x="{PAD_LEFT - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{_number(value)}{unit}</text>')
    n = len(x_labels)
    if n:
        step = max(1, n // 8)
        inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
        for i in range(0, n, step):
            x = PAD_LEFT + inner_w * (i + 0.5) / n
            body.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 14}" font-size="10" text-anchor="middle">'
                        f'{escape(x_labels[i][5:] if len(x_labels[i]) == 10 else x_labels[i])}</text>')
    return body


def stacked(table: ReportTable, lang: str) -> Markup:
    keys = [c.key for c in table.columns]
    series = [keys.index(s) for s in table.series]
    y_max = _nice_max(max((sum(row[i] or 0 for i in series) for row in table.rows), default=0))
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    n = max(len(table.rows), 1)
    bar_w = max(1.0, inner_w / n * 0.8)
    body = _axes(y_max, [str(r[0]) for r in table.rows])
    for i, row in enumerate(table.rows):
        x = PAD_LEFT + inner_w * i / n + (inner_w / n - bar_w) / 2
        base = PAD_TOP + inner_h
        for j, col in enumerate(series):
            value = row[col] or 0
            if not value:
                continue
            h = inner_h * value / y_max
            base -= h
            label = f"{row[0]} {table.columns[col].header(lang)}: {value}"
            body.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                        f'fill="{_colour(keys[col], j)}"><title>{escape(label)}</title></rect>')
    legend = [(table.columns[c].header(lang), _colour(keys[c], j)) for j, c in enumerate(series)]
    return _frame(table, lang, body, legend)


def lines(table: ReportTable, lang: str) -> Markup:
    keys = [c.key for c in table.columns]
    series = [keys.index(s) for s in table.series]
    values = [row[c] for row in table.rows for c in series if row[c] is not None]
    y_max = _nice_max(max(values, default=0))
    inner_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    inner_w = WIDTH - PAD_LEFT - PAD_RIGHT
    n = max(len(table.rows), 1)
    body = _axes(y_max, [str(r[0]) for r in table.rows])
    for j, col in enumerate(series):
        points = []
        for i, row in enumerate(table.rows):
            if row[col] is None:
                continue
            x = PAD_LEFT + inner_w * (i + 0.5) / n
            y = PAD_TOP + inner_h - inner_h * row[col] / y_max
            points.append((x, y, row))
        colour = _colour(keys[col], j)
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, row in points:
            label = f"{row[0]} {table.columns[col].header(lang)}: {row[col]:.1f}"
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(label)}</title></circle>')
    legend = [(table.columns[c].header(lang), _colour(keys[c], j)) for j, c in enumerate(series)]
    return _frame(table, lang, body, legend)


def bars(table: ReportTable, lang: str, limit: int = 20) -> Markup:
    """Horizontal bars: the first text column as the label, the first series as the length."""
    keys = [c.key for c in table.columns]
    value_col = keys.index(table.series[0])
    label_col = next((i for i, c in enumerate(table.columns) if c.kind not in ("int", "pct", "score")), 0)
    rows = table.rows[:limit]
    row_h = 18
    height = max(len(rows), 1) * row_h + 8
    y_max = max((r[value_col] or 0 for r in rows), default=0) or 1
    label_w = 230
    title = escape(table.title(lang))
    body = [f'<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {WIDTH} {height}" '
            f'xmlns="http://www.w3.org/2000/svg" data-chart="{escape(table.name)}"><title>{title}</title>']
    from connector.reports import cell_text
    for i, row in enumerate(rows):
        y = 4 + i * row_h
        label = cell_text(table.columns[label_col], row[label_col], lang)
        short = label if len(label) <= 28 else label[:27] + "…"
        w = (WIDTH - label_w - 60) * (row[value_col] or 0) / y_max
        body.append(f'<text x="{label_w - 6}" y="{y + 12}" font-size="11" text-anchor="end">{escape(short)}</text>'
                    f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" fill="{PALETTE[0]}">'
                    f'<title>{escape(label)}: {row[value_col]}</title></rect>'
                    f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" font-size="11">{row[value_col]}</text>')
    body.append("</svg>")
    return Markup("".join(body))


def render(table: ReportTable, lang: str) -> Markup | None:
    if table.chart == "stacked":
        return stacked(table, lang)
    if table.chart == "lines":
        return lines(table, lang)
    if table.chart == "bars":
        return bars(table, lang)
    return None


def chart_context() -> dict[str, Any]:
    return {"render_chart": render}
