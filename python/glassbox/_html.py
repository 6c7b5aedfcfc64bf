"""Grids as inline SVG for notebooks, in the shell's colours: cividis for probabilities, white to
blue (negative) or orange (positive) for signed values, each with a labelled colour bar. No
external assets; every text is escaped."""

from html import escape

_CIVIDIS = [(0, 32, 77), (65, 77, 107), (124, 123, 120), (188, 175, 111), (255, 234, 70)]
_NEGATIVE = (33, 102, 172)
_POSITIVE = (230, 97, 1)
_WHITE = (255, 255, 255)


def _mix(a, b, t):
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


def _hex(rgb):
    return "#%02x%02x%02x" % rgb


def sequential(t):
    """Cividis at t in [0, 1]."""
    t = min(max(t, 0.0), 1.0) * (len(_CIVIDIS) - 1)
    i = min(int(t), len(_CIVIDIS) - 2)
    return _hex(_mix(_CIVIDIS[i], _CIVIDIS[i + 1], t - i))


def diverging(value, extent):
    """White at 0, blue at -extent, orange at +extent."""
    t = 0.0 if extent <= 0 else min(abs(value) / extent, 1.0)
    return _hex(_mix(_WHITE, _POSITIVE if value >= 0 else _NEGATIVE, t))


def _ink(fill):
    """Black or white text, whichever reads better on `fill` (WCAG relative luminance)."""
    channels = [int(fill[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000" if luminance > 0.179 else "#fff"


def grid_svg(title, rows, columns, values, colour, legend, labels=None, cell=(44, 20)):
    """`values[r][c]` as coloured cells under `title`, row and column labels, `labels[r][c]`
    written in the cells when given, and `legend` = (caption, colour(t), end labels)."""
    width, height = cell
    left, top = 70, 40
    svg_width = left + width * len(columns) + 10
    svg_height = top + height * len(rows) + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{svg_width}" height="{svg_height}" '
        f'font-family="sans-serif" font-size="10">',
        f'<text x="4" y="14" font-size="12" font-weight="bold">{escape(title)}</text>',
    ]
    for c, name in enumerate(columns):
        x = left + c * width + width / 2
        parts.append(
            f'<text x="{x}" y="{top - 4}" text-anchor="end" transform="rotate(-45 {x} {top - 4})">'
            f"{escape(str(name)[:12])}</text>"
        )
    for r, name in enumerate(rows):
        y = top + r * height
        parts.append(f'<text x="{left - 4}" y="{y + height * 0.7}" text-anchor="end">{escape(str(name))}</text>')
        for c, value in enumerate(values[r]):
            fill = colour(value)
            x = left + c * width
            tip = f"{rows[r]}, {columns[c]}: {value:.4g}"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{width}" height="{height}" fill="{fill}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if labels is not None:
                parts.append(
                    f'<text x="{x + 2}" y="{y + height * 0.7}" fill="{_ink(fill)}">'
                    f"{escape(str(labels[r][c])[:7])}</text>"
                )
    caption, scale, ends = legend
    bar_y = top + height * len(rows) + 16
    bar_width = min(200, svg_width - left - 10)
    for i in range(20):
        parts.append(
            f'<rect x="{left + i * bar_width / 20}" y="{bar_y}" width="{bar_width / 20 + 0.5}" height="10" '
            f'fill="{scale(i / 19)}"/>'
        )
    parts.append(f'<text x="{left - 4}" y="{bar_y + 9}" text-anchor="end">{escape(caption)}</text>')
    for i, label in enumerate(ends):
        x = left + bar_width * i / max(len(ends) - 1, 1)
        anchor = "start" if i == 0 else ("end" if i == len(ends) - 1 else "middle")
        parts.append(f'<text x="{x}" y="{bar_y + 24}" text-anchor="{anchor}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
