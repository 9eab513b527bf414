"""The lake report's charts: matplotlib figures drawn as inline SVG (no script, nothing fetched).

Each function returns one ``<svg>`` element that scales with its container (``viewBox``, width 100%).
Figures are made with ``matplotlib.figure.Figure`` (no pyplot: no global state, no GUI backend). Text
is kept as SVG ``<text>`` (``svg.fonttype = none``), which matplotlib escapes; labels from the data
are shortened, and mathtext is off (``text.parse_math``), so a ``$`` in a name is just a character.
Element ids are prefixed per chart, so several charts in one page never share an id.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

PALETTE = ("#3366aa", "#ee8833", "#44aa77", "#cc4455", "#8866bb", "#999933", "#55aacc", "#aa6633")
KEPT, DUPLICATE, REJECT = PALETTE[0], PALETTE[1], PALETTE[3]
_STYLE: dict[str, Any] = {"svg.fonttype": "none", "text.parse_math": False, "svg.hashsalt": "siftlake",
          "font.size": 10, "axes.spines.top": False,
          "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "axes.axisbelow": True,
          "font.family": ["DejaVu Sans", "sans-serif"]}
_counter = itertools.count(1)
_ID = re.compile(r'\bid="([^"]+)"')


def _style() -> AbstractContextManager[None]:
    """The report's matplotlib settings, for one figure (the global rcParams stay as they are)."""
    return mpl.rc_context(cast(Any, _STYLE))


def label(text: Any, limit: int = 32) -> str:
    """Data text as a chart label: one line, shortened, never empty (mathtext is off: ``$`` stays ``$``)."""
    value = " ".join(str(text).split()) if text is not None else "(none)"
    return (value if len(value) <= limit else value[: limit - 1] + "…") or "(empty)"


def to_svg(fig: Figure) -> str:
    """The figure as one scalable ``<svg>`` element with ids unique in the page."""
    buffer = io.StringIO()
    with _style():
        # One draw: fixed margins, no tight bbox or layout engine (each costs another draw of the figure).
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    prefix = f"c{next(_counter)}-"
    for name in set(_ID.findall(svg)):
        svg = svg.replace(f'id="{name}"', f'id="{prefix}{name}"').replace(f"#{name})", f"#{prefix}{name})")
        svg = svg.replace(f'href="#{name}"', f'href="#{prefix}{name}"')
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="chart" role="img"', svg, count=1)


def _figure(width: float, height: float, left: float = 0.7, bottom: float = 0.55, top: float = 0.15) -> Figure:
    """A figure with margins in inches (left for the y labels, bottom for the x labels, top for a legend)."""
    with _style():
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=left / width, right=1 - 0.15 / width, bottom=bottom / height,
                            top=1 - top / height)
        return fig


def _legend_above(ax: Any) -> None:
    """The legend in a row above the plot, where it never hides a bar."""
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=4, frameon=False, fontsize=8,
              borderaxespad=0.0)


def _label_inches(names: Sequence[Any]) -> float:
    """Room for the longest y label (about 0.075 inch a character at the report's font size)."""
    return 0.25 + 0.075 * max((len(label(n)) for n in names), default=4)


def per_date(dates: Sequence[str], kept: Sequence[int], dups: Sequence[int], rejects: Sequence[int]) -> str:
    """Stacked bars per ingest date: kept documents, duplicates; rejects beside them."""
    with _style():
        fig = _figure(7.5, 3.4, bottom=0.9, top=0.4)
        ax = fig.add_subplot()
        xs = list(range(len(dates)))
        width = 0.4
        ax.bar([x - width / 2 for x in xs], kept, width, color=KEPT, label="kept documents")
        ax.bar([x - width / 2 for x in xs], dups, width, bottom=kept, color=DUPLICATE, label="duplicates")
        ax.bar([x + width / 2 for x in xs], rejects, width, color=REJECT, label="rejects")
        _date_ticks(ax, dates)
        ax.set_ylabel("rows")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _legend_above(ax)
        return to_svg(fig)


def _date_ticks(ax: Any, dates: Sequence[str]) -> None:
    step = max(1, len(dates) // 12)
    ax.set_xticks(list(range(0, len(dates), step)), [label(d) for d in dates[::step]],
                  rotation=30 if len(dates) > 4 else 0, ha="right" if len(dates) > 4 else "center")


def volume_per_date(dates: Sequence[str], characters: Sequence[int], stored: Sequence[int]) -> str:
    """Characters of text and bytes of Parquet stored per ingest date (millions)."""
    with _style():
        fig = _figure(7.5, 3.2, bottom=0.9, top=0.4)
        ax = fig.add_subplot()
        xs = list(range(len(dates)))
        ax.bar([x - 0.2 for x in xs], [c / 1e6 for c in characters], 0.4, color=PALETTE[2], label="characters (M)")
        ax.bar([x + 0.2 for x in xs], [b / 1e6 for b in stored], 0.4, color=PALETTE[4], label="stored MB (Parquet)")
        _date_ticks(ax, dates)
        _legend_above(ax)
        return to_svg(fig)


def hbars(names: Sequence[Any], values: Sequence[float], xlabel: str, colors: Sequence[str] | None = None,
          second: Sequence[float] | None = None, second_label: str = "") -> str:
    """Horizontal bars, largest on top (``second``: a lighter overlay such as the unique part)."""
    with _style():
        fig = _figure(6.0, 0.8 + 0.28 * max(1, len(names)), left=_label_inches(names))
        ax = fig.add_subplot()
        ys = list(range(len(names)))[::-1]
        ax.barh(ys, values, color=list(colors) if colors else PALETTE[0], alpha=0.45 if second else 1.0,
                label=xlabel if second else None)
        if second is not None:
            ax.barh(ys, second, color=PALETTE[0], label=second_label)
            ax.legend(loc="lower right", frameon=False, fontsize=8)
        ax.set_yticks(ys, [label(n) for n in names])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", visible=False)
        return to_svg(fig)


def lang_score_boxes(langs: Sequence[str], quantiles: Sequence[Sequence[float]]) -> str:
    """One box per language from duckdb's quantiles (5%, 25%, 50%, 75%, 95%) of ``q_lang_score``."""
    with _style():
        fig = _figure(6.0, 0.8 + 0.3 * max(1, len(langs)), left=_label_inches(langs))
        ax = fig.add_subplot()
        stats = [{"whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4], "label": label(lang),
                  "fliers": []} for lang, q in zip(langs, quantiles, strict=True)][::-1]
        ax.bxp(stats, orientation="horizontal", showfliers=False, patch_artist=True,
               boxprops={"facecolor": "#cfdcf0", "edgecolor": PALETTE[0]}, medianprops={"color": PALETTE[3]})
        ax.axvline(0.65, color="#888888", linestyle="--", linewidth=1)
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("q_lang_score (whiskers 5%-95%; dashed: FineWeb's 0.65)")
        ax.grid(axis="y", visible=False)
        return to_svg(fig)


def score_histogram(kept: Sequence[int], dups: Sequence[int], cut: float) -> str:
    """The quality score's histogram, kept documents and duplicates stacked, with the cut marked."""
    with _style():
        fig = _figure(7.5, 3.2, top=0.4)
        ax = fig.add_subplot()
        bins = len(kept)
        lefts = [i / bins for i in range(bins)]
        ax.bar(lefts, kept, 1 / bins, align="edge", color=KEPT, label="kept", edgecolor="white", linewidth=0.5)
        ax.bar(lefts, dups, 1 / bins, bottom=kept, align="edge", color=DUPLICATE, label="duplicates",
               edgecolor="white", linewidth=0.5)
        ax.axvline(cut, color="#444444", linestyle="--", linewidth=1, label=f"cut {cut:g}")
        ax.set_xlim(0, 1)
        ax.set_xlabel("quality_score")
        ax.set_ylabel("documents")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _legend_above(ax)
        return to_svg(fig)


def score_by_language(hists: Sequence[tuple[str, Sequence[int]]], cut: float) -> str:
    """The kept documents' quality histogram of each top language, as shares of that language (step lines
    on one axes: comparable at a glance, and one axes draws fast)."""
    with _style():
        fig = _figure(7.5, 3.2, top=0.4)
        ax = fig.add_subplot()
        for index, (lang, counts) in enumerate(hists):
            total = sum(counts) or 1
            edges = [i / len(counts) for i in range(len(counts) + 1)]
            ax.stairs([c / total for c in counts], edges, color=PALETTE[index % 8], linewidth=1.6,
                      label=f"{label(lang)} ({total:,})")
        ax.axvline(cut, color="#444444", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("quality_score")
        ax.set_ylabel("share of the language's documents")
        _legend_above(ax)
        return to_svg(fig)
