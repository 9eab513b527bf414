"""Writing the lake report: the page of the whole lake or of one run (``siftlake report``), and each run's
own page in the lake with its markdown summary for the run's Prefect artifact.

A run's page lands at ``LAKE/_reports/<run_id>.html``, written through the lake's ``Store`` (a local
folder or a bucket). The ``_`` prefix keeps it out of the dataset: readers glob ``documents/`` and
``rejects/`` only, and tools that read the lake folder skip ``_``-prefixed names.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

from flows.lake import REPORTS
from flows.report import page, queries
from flows.report.collect import ReportData, collect
from flows.storage import Store


def report_key(run_id: str) -> str:
    return f"{REPORTS}/{run_id}.html"


def build(store: Store, run_id: str | None = None) -> tuple[str, ReportData]:
    """The report page of the lake (or of one run) and the data it shows."""
    lake = queries.open_lake(store, run_id)
    try:
        data = collect(lake)
    finally:
        lake.con.close()
    text = page.render(data)
    gc.collect()  # matplotlib figures hold reference cycles
    return text, data


def write_report(store: Store, out: Path, run_id: str | None = None) -> ReportData:
    """Write the report to the local file ``out`` (whole, or not at all)."""
    text, data = build(store, run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(out)
    return data


def write_run_report(store: Store, run_id: str) -> tuple[str, ReportData]:
    """Write the run's page into the lake at ``_reports/<run_id>.html``; return where it is and its data."""
    text, data = build(store, run_id)
    store.write_bytes(report_key(run_id), text.encode("utf-8"))
    where = store.url(report_key(run_id))
    return (where if store.remote else Path(where).resolve().as_uri()), data


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#<>~])")


def md(value: Any, limit: int = 80) -> str:
    """Data text for a markdown table cell: one line, shortened, markdown and HTML characters escaped."""
    text = " ".join(str(value if value is not None else "").split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", text)


def summary_markdown(data: ReportData, where: str) -> str:
    """The run summary for the ``ingest-report`` artifact: the same numbers as the page, in markdown."""
    t = data.totals
    lines = [f"# siftlake run {md(data.run_id)}", "",
             f"Full report (HTML, opens offline): [{md(where, 300)}]({where})", "",
             f"{t['documents']:,} documents ({t['unique']:,} unique, {t['duplicates']:,} duplicates), "
             f"{t['rejects']:,} rejects, {t['characters']:,} characters.", ""]
    lines += _md_table("Languages", ["lang", "documents", "share"],
                       [(md(x["lang"]), x["documents"], f"{100 * x['share']:.1f}%") for x in data.languages[:10]])
    lines += _md_table("Top sites", ["registered domain", "documents"],
                       [(md(s["domain"]), s["documents"]) for s in data.sites[0][:10]])
    lines += _md_table("Quality score", ["score", "documents", "duplicates"], _score_rows(data))
    lines += _md_table(f"What drives a score under {data.cut:g}", ["cause", "signal", "documents"],
                       [(md(d["label"]), md(d["signal"]), d["documents"]) for d in data.drivers[:6]])
    lines += _md_table("Duplicates by kind", ["kind", "documents"], [(md(k), n) for k, n in data.dup_kinds.items()])
    lines += _md_table("Largest duplicate clusters", ["kept document", "url", "duplicates", "kept because"],
                       [_cluster_row(c) for c in data.clusters])
    lines += _md_table("Rejects", ["stage", "reason", "units", "example"],
                       [(md(r["stage"]), md(r["reason"]), r["count"],
                         md(r["examples"][0]["source_uri"] if r["examples"] else "")) for r in data.reject_reasons])
    return "\n".join(lines)


def _md_table(title: str, headers: list[str], rows: list[tuple[Any, ...]]) -> list[str]:
    out = [f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in rows]
    return [*out, *(["| (none) |" + " |" * (len(headers) - 1)] if not rows else []), ""]


def _score_rows(data: ReportData) -> list[tuple[Any, ...]]:
    """The 20-bin histogram folded into tenths."""
    kept, dups = data.score_hist.get("", [[0] * queries.SCORE_BINS, [0] * queries.SCORE_BINS])
    step = queries.SCORE_BINS // 10
    tenths = [(sum(kept[i * step:(i + 1) * step]), sum(dups[i * step:(i + 1) * step])) for i in range(10)]
    return [(f"{i / 10:.1f}-{(i + 1) / 10:.1f}", k + d, d) for i, (k, d) in enumerate(tenths)]


def _cluster_row(cluster: dict[str, Any]) -> tuple[Any, ...]:
    kept = cluster["kept"] or {"title": cluster["cluster"], "url": ""}
    return (md(kept["title"] or "(no title)"), md(kept["url"] or ""), cluster["duplicates"],
            md(page.why_kept(cluster)))
