"""Charts as PNGs, drawn with Pillow (already a dependency; no matplotlib). The one chart
module: `bench -plot` (throughput against batch size), `calc_anchors -png` (avg IoU
against the number of clusters) and training's chart.png (loss against iteration, mAP on a
second axis) all draw with line_chart.

A few series of (x, y) points on linear axes, log2 on x when the x values are powers of two
(batch sizes), single marked points (a square each), an optional second y axis on the right
(right_series: a measure with its own range, such as mAP in [0, 1]), ticks, a legend and a
title. Long series (training curves) are drawn as lines without dots, with round x ticks.
"""
import math

from PIL import Image, ImageDraw, ImageFont

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
MAX_DOTS = 60          # a series with more points is drawn as a line only
MAX_EVERY_X_TICK = 12  # with more distinct x values, ticks at round steps instead


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


def _x_ticks(xs, log_x):
    """Every x value when there are few (or the axis is log2); else round steps over the
    range."""
    if log_x or len(xs) <= MAX_EVERY_X_TICK:
        return xs
    step = _nice_step(xs[-1] - xs[0], ticks=8)
    first = math.ceil(xs[0] / step) * step
    count = int(math.floor((xs[-1] - first) / step + 1e-9)) + 1
    return [first + i * step for i in range(count)]


def line_chart(path, series, title, x_label, y_label, size=(720, 440), markers=None,
               y_from=0.0, log_x=None, y_max=None, right_series=None, right_label=None,
               right_range=(0.0, 1.0)):
    """series: {name: [(x, y), ...]}, drawn as lines (with dots when short); markers:
    {name: (x, y)}, drawn as squares in the colours after the series'. The y axis starts at
    y_from (0 by default) and ends above the highest point, or at y_max when given (points
    above it are drawn on the top edge); log_x None takes log2 on x when every x is a power
    of two. right_series: {name: [(x, y), ...]} against a second y axis on the right spanning
    right_range, drawn as squares joined by lines, labelled right_label. path: a file name
    or a binary file object. Writes a PNG and returns path."""
    markers = markers or {}
    right_series = right_series or {}
    left_points = [point for values in series.values() for point in values] + \
        list(markers.values())
    right_points = [point for values in right_series.values() for point in values]
    if not left_points and not right_points:
        raise ValueError("line_chart: no points to plot")
    xs = sorted({x for x, _ in left_points + right_points})
    if log_x is None:
        log_x = len(xs) > 1 and all(float(x).is_integer() and x > 0 and
                                    (int(x) & (int(x) - 1)) == 0 for x in xs)
    to_x = (lambda v: math.log2(v)) if log_x else float
    x_min, x_max = to_x(xs[0]), to_x(xs[-1])
    if x_max == x_min:
        x_min, x_max = x_min - 1, x_max + 1
    y_top = max(y for _, y in left_points) if left_points else y_from + 1
    if y_max is not None:
        y_top = min(y_top, y_max)
    step = _nice_step(y_top - y_from)
    y_end = y_from + step * math.ceil((y_top - y_from) * 1.05 / step)
    if y_end <= y_from:   # every y at y_from: one step of headroom instead of a zero span
        y_end = y_from + step
    r_from, r_to = right_range

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, top, bottom = 70, 40, size[1] - 60
    right = size[0] - (60 if right_series else 20)

    def x_pixel(x):
        return left + (to_x(x) - x_min) / (x_max - x_min) * (right - left)

    def pixel(x, y):
        y = min(y, y_end)
        return x_pixel(x), bottom - (y - y_from) / (y_end - y_from) * (bottom - top)

    def right_pixel(x, y):
        y = min(max(y, r_from), r_to)
        return x_pixel(x), bottom - (y - r_from) / (r_to - r_from) * (bottom - top)

    draw.text((left, 12), title, fill="black", font=font)
    tick = y_from
    while tick <= y_end + 1e-9:
        _, py = pixel(xs[0], tick)
        draw.line([left - 4, py, right, py], fill=(225, 225, 225))
        draw.text((8, py - 6), _label(tick), fill="black", font=font)
        tick += step
    draw.rectangle([left, top, right, bottom], outline="black")   # over the grid lines
    for x in _x_ticks(xs, log_x):
        px = x_pixel(x)
        draw.line([px, bottom, px, bottom + 4], fill="black")
        draw.text((px - 6, bottom + 8), _label(x), fill="black", font=font)
    draw.text(((left + right) // 2 - 40, bottom + 28), x_label + (" (log scale)" if log_x
                                                                     else ""), fill="black",
              font=font)
    draw.text((8, top - 28), y_label, fill="black", font=font)
    if right_series:
        r_step = _nice_step(r_to - r_from)
        tick = r_from
        while tick <= r_to + 1e-9:
            _, py = right_pixel(xs[0], tick)
            draw.line([right, py, right + 4, py], fill="black")
            draw.text((right + 8, py - 6), _label(round(tick, 10)), fill="black", font=font)
            tick += r_step
        if right_label:
            draw.text((right - 40, top - 28), right_label, fill="black", font=font)

    entry = 0

    def legend(colour, name, square):
        nonlocal entry
        legend_y = top + 8 + 14 * entry
        if square:
            draw.rectangle([left + 16, legend_y + 2, left + 24, legend_y + 10], fill=colour)
        else:
            draw.line([left + 10, legend_y + 6, left + 30, legend_y + 6], fill=colour, width=2)
        draw.text((left + 36, legend_y), name, fill="black", font=font)
        entry += 1

    for name, values in series.items():
        colour = COLOURS[entry % len(COLOURS)]
        pixels = [pixel(x, y) for x, y in sorted(values)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        if len(pixels) <= MAX_DOTS:
            for px, py in pixels:
                draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        legend(colour, name, square=False)
    for name, (x, y) in markers.items():
        colour = COLOURS[entry % len(COLOURS)]
        px, py = pixel(x, y)
        draw.rectangle([px - 4, py - 4, px + 4, py + 4], fill=colour)
        legend(colour, name, square=True)
    for name, values in right_series.items():
        colour = COLOURS[entry % len(COLOURS)]
        pixels = [right_pixel(x, y) for x, y in sorted(values)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for px, py in pixels:
            draw.rectangle([px - 4, py - 4, px + 4, py + 4], fill=colour)
        legend(colour, name, square=True)
    image.save(path, format="PNG")
    return path
