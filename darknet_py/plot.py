"""Charts as PNGs, drawn with Pillow (already a dependency; no matplotlib). The one chart
module: `bench -plot` (throughput against batch size) and `calc_anchors -png` (avg IoU
against the number of clusters) both draw with line_chart.

A few series of (x, y) points on linear axes, log2 on x when the x values are powers of two
(batch sizes), single marked points (a square each), ticks, a legend and a title.
"""
import math

from PIL import Image, ImageDraw, ImageFont

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def _nice_step(span, ticks=5):
    """A round tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks."""
    raw = span / max(1, ticks)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _label(value):
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2g}"


def line_chart(path, series, title, x_label, y_label, size=(720, 440), markers=None,
               y_from=0.0, log_x=None):
    """series: {name: [(x, y), ...]}, drawn as lines with dots; markers: {name: (x, y)},
    drawn as squares in the colours after the series'. The y axis starts at y_from (0 by
    default); log_x None takes log2 on x when every x is a power of two. Writes a PNG to
    path and returns it."""
    markers = markers or {}
    points = [point for values in series.values() for point in values] + list(markers.values())
    if not points:
        raise ValueError("line_chart: no points to plot")
    xs = sorted({x for x, _ in points})
    if log_x is None:
        log_x = len(xs) > 1 and all(float(x).is_integer() and x > 0 and
                                    (int(x) & (int(x) - 1)) == 0 for x in xs)
    to_x = (lambda v: math.log2(v)) if log_x else float
    x_min, x_max = to_x(xs[0]), to_x(xs[-1])
    if x_max == x_min:
        x_min, x_max = x_min - 1, x_max + 1
    y_top = max(y for _, y in points)
    step = _nice_step(y_top - y_from)
    y_max = y_from + step * math.ceil((y_top - y_from) * 1.05 / step)
    if y_max <= y_from:   # every y at y_from: one step of headroom instead of a zero span
        y_max = y_from + step

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 70, size[0] - 20, 40, size[1] - 60

    def pixel(x, y):
        px = left + (to_x(x) - x_min) / (x_max - x_min) * (right - left)
        py = bottom - (y - y_from) / (y_max - y_from) * (bottom - top)
        return px, py

    draw.text((left, 12), title, fill="black", font=font)
    draw.rectangle([left, top, right, bottom], outline="black")
    tick = y_from
    while tick <= y_max + 1e-9:
        _, py = pixel(xs[0], tick)
        draw.line([left - 4, py, right, py], fill=(225, 225, 225))
        draw.text((8, py - 6), _label(tick), fill="black", font=font)
        tick += step
    for x in xs:
        px, _ = pixel(x, 0)
        draw.line([px, bottom, px, bottom + 4], fill="black")
        draw.text((px - 6, bottom + 8), _label(x), fill="black", font=font)
    draw.text(((left + right) // 2 - 40, bottom + 28), x_label + (" (log scale)" if log_x
                                                                     else ""), fill="black",
              font=font)
    draw.text((8, top - 28), y_label, fill="black", font=font)
    for number, (name, values) in enumerate(series.items()):
        colour = COLOURS[number % len(COLOURS)]
        pixels = [pixel(x, y) for x, y in sorted(values)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for px, py in pixels:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        legend_y = top + 8 + 14 * number
        draw.line([left + 10, legend_y + 6, left + 30, legend_y + 6], fill=colour, width=2)
        draw.text((left + 36, legend_y), name, fill="black", font=font)
    for number, (name, (x, y)) in enumerate(markers.items(), start=len(series)):
        colour = COLOURS[number % len(COLOURS)]
        px, py = pixel(x, y)
        draw.rectangle([px - 4, py - 4, px + 4, py + 4], fill=colour)
        legend_y = top + 8 + 14 * number
        draw.rectangle([left + 16, legend_y + 2, left + 24, legend_y + 10], fill=colour)
        draw.text((left + 36, legend_y), name, fill="black", font=font)
    image.save(path, format="PNG")
    return path
