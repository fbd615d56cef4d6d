"""Server-side SVG charts for the example pages, drawn with pygal. No CDN at run time.

pygal's SVG loads a tooltip script from a CDN by default: ``js=[]`` turns it off, the XML
declaration is dropped so the SVG can sit inline in HTML, and pygal's comments (which name its
web site) and its inline config script are stripped, so a page with charts references no
external URL at all. Values are plotted in minor units (integers, exactly as mentorpay keeps
them) and labelled through :class:`~mentorpay.Money`, so a label never shows a rounded float.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import pygal
from pygal.style import Style

from mentorpay import Money

__all__ = ["money_chart"]

_COMMENT = re.compile(r"<!--.*?-->", re.S)
# pygal's inline config script serves only its (disabled) tooltip script: dropped too.
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)
_STYLE = Style(
    background="white",
    plot_background="white",
    font_family="sans-serif",
    colors=("#3366cc", "#109618", "#ff9900", "#dc3912", "#990099"),
)


def _label(currency: str) -> Any:
    def fmt(value: float | None) -> str:
        # Axis ticks may fall between minor units: shown rounded, never used as money.
        return "" if value is None else str(Money(round(value), currency))

    return fmt


def money_chart(
    title: str,
    days: Sequence[date],
    series: Mapping[str, Sequence[Money]],
    *,
    chart_id: str,
    kind: str = "bar",
) -> str:
    """An inline ``<svg>`` of one currency's per-day series (one bar or line per series)."""
    currencies = {m.currency for values in series.values() for m in values}
    if len(currencies) > 1:  # never plot two currencies on one axis
        raise ValueError(f"one chart, one currency: got {sorted(currencies)}")
    currency = currencies.pop() if currencies else "GBP"
    amounts = [m.amount for values in series.values() for m in values] or [0]
    # At least one major unit tall: an idle period gets a readable axis, not 0.00 .. 0.01.
    low, high = min(0, *amounts), max(100, *amounts)
    chart_class = pygal.Line if kind == "line" else pygal.Bar
    chart = chart_class(
        js=[],
        disable_xml_declaration=True,
        width=720,
        height=300,
        explicit_size=True,
        style=_STYLE,
        x_label_rotation=30,
        range=(low, high),
        x_labels_major_every=max(1, len(days) // 8),
        show_minor_x_labels=False,
        legend_at_bottom=True,
        value_formatter=_label(currency),
        print_values=False,
    )
    chart.title = title
    chart.x_labels = [d.strftime("%d %b") for d in days]
    for name, values in series.items():
        chart.add(name, [m.amount for m in values])
    svg = _SCRIPT.sub("", _COMMENT.sub("", str(chart.render(is_unicode=True))))
    # A stable id (pygal's is random; its CSS selectors use it too) lets pages address it.
    found = re.search(r'id="(chart-[0-9a-f-]+)"', svg)
    return svg.replace(found.group(1), chart_id) if found else svg
