"""The lake report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

Every piece of text from the data (titles, urls, source uris, details, samples, languages, domains)
goes through ``esc`` (``html.escape``); links are made only for http(s) URLs. A Content-Security-Policy
forbids every script and every remote load, so even a bug in the escaping could not run or fetch anything.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from flows.report import charts
from flows.report.collect import ReportData

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; script-src 'none'; "
       "connect-src 'none'; base-uri 'none'; form-action 'none'")
KEEP_POLICY = ("Within a run the kept document of a cluster is the one that contains the others' text, else the "
               "highest quality score, then the longest text, then the smallest doc_id. A document already in the "
               "lake stays kept: later near copies and excerpts join its cluster.")
_CSS = """
:root{--fg:#1d232b;--muted:#5b6675;--line:#dde2e8;--bg:#f6f7f9;--card:#fff;--accent:#3366aa}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
background:var(--bg)}
header,main,footer{max-width:1500px;margin:0 auto;padding:1rem clamp(.6rem,2.5vw,2rem)}
h1{font-size:1.45rem;margin:.2rem 0}h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:2px solid var(--line)}
h3{font-size:1rem;margin:.2rem 0 .5rem}
.muted{color:var(--muted)}.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9.5rem,1fr));gap:.6rem}
.card,.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.7rem .9rem;min-width:0}
.card b{display:block;font-size:1.3rem}
.wide{grid-column:1/-1}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,34rem),1fr));gap:1rem}
svg.chart{display:block;width:100%;height:auto;max-width:100%}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{border-bottom:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.wrap{overflow-wrap:anywhere;min-width:12rem;max-width:40rem}
tr.kept td{background:#eef6ee}
.text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85rem;background:#fafbfc;border-left:3px solid
var(--line);padding:.4rem .6rem;margin:.4rem 0 0;max-height:12rem;overflow:auto}
a{color:var(--accent);overflow-wrap:anywhere}
"""


def esc(value: Any) -> str:
    """Text from the data as HTML text (``<``, ``>``, ``&`` and quotes escaped); None as an empty string."""
    return "" if value is None else html.escape(str(value), quote=True)


def link(url: Any, text: Any = None) -> str:
    """An http(s) URL as a link that sends no referrer; any other scheme stays plain text."""
    shown = esc(text if text is not None else url)
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return f'<a href="{esc(url)}" rel="noopener noreferrer nofollow">{shown}</a>'
    return shown


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else esc(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (),
          classes: Sequence[str] | None = None) -> str:
    """A scrollable table; cells are escaped unless given as ``Markup``."""
    head = "".join(f'<th{" class=n" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    body = []
    for index, row in enumerate(rows):
        cls = f' class="{classes[index]}"' if classes and classes[index] else ""
        cells = "".join(_cell(i, v, i in numeric) for i, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


class Markup(str):
    """HTML this module built itself (already escaped): inserted as is."""


def _cell(index: int, value: Any, numeric: bool) -> str:
    if isinstance(value, Markup):
        return f"<td class=wrap>{value}</td>"
    if numeric:
        return f"<td class=n>{number(value)}</td>"
    return f"<td class=wrap>{esc(value)}</td>"


def panel(title: str, body: str, wide: bool = False) -> str:
    """A titled box of the grid; ``wide`` spans every column (long tables)."""
    return f'<div class="panel{" wide" if wide else ""}"><h3>{esc(title)}</h3>{body}</div>'


def section(anchor: str, title: str, *panels: str, note: str = "") -> str:
    extra = f'<p class="muted">{note}</p>' if note else ""
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{extra}<div class="grid">{"".join(panels)}</div></section>'


def render(data: ReportData) -> str:
    """The whole page."""
    scope = f"run {data.run_id}" if data.run_id else "whole lake"
    sections = [_overview(data), _per_date(data), _languages(data), _sites(data), _quality(data),
                _duplicates(data), _rejects(data), _samples(data)]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="referrer" content="no-referrer">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>siftlake report: {esc(scope)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>siftlake report: {esc(scope)}</h1><p class=muted>lake <span class=mono>{esc(data.lake)}"
            f"</span> · generated {esc(data.generated)} · {len(data.manifests)} run(s)</p></header>"
            f"<main>{''.join(sections)}</main><footer class=muted><p>Charts: matplotlib (SVG, drawn when the "
            "report was written); numbers: duckdb over the lake's Parquet. No script runs in this page.</p>"
            "</footer></body></html>\n")


def _overview(data: ReportData) -> str:
    t = data.totals
    cards = [("documents", t["documents"]), ("unique", t["unique"]), ("duplicates", t["duplicates"]),
             ("rejects", t["rejects"]), ("characters", t["characters"]), ("stored bytes", t["stored_bytes"]),
             ("runs", t["runs"])]
    html_cards = "".join(f'<div class="card"><span class=muted>{esc(k)}</span><b>{number(v)}</b></div>'
                         for k, v in cards)
    runs = [(m.get("run_id"), m.get("started_at", "")[:19], m.get("config", {}).get("source", ""),
             m.get("counts", {}).get("documents", 0), m.get("counts", {}).get("duplicates", 0),
             m.get("counts", {}).get("rejects", 0), round(sum(m.get("seconds", {}).values()), 1))
            for m in data.manifests[-30:]][::-1]
    runs_table = table(["run_id", "started (UTC)", "source", "documents", "duplicates", "rejects", "stage s"],
                       runs, numeric=(3, 4, 5, 6))
    return (f'<section id="overview"><div class="cards">{html_cards}</div></section>'
            + section("runs", "Runs", panel("Latest runs (manifests in _runs/)", runs_table)))


def _per_date(data: ReportData) -> str:
    days = data.per_date
    if not days:
        return section("dates", "Per ingest date", panel("Nothing yet", "<p>No rows in scope.</p>"))
    dates = [d["date"] for d in days]
    kept = [d["documents"] - d["duplicates"] for d in days]
    chart = charts.per_date(dates, kept, [d["duplicates"] for d in days], [d["rejects"] for d in days])
    volume = charts.volume_per_date(dates, [d["characters"] for d in days], [d["stored_bytes"] for d in days])
    rows = [(d["date"], d["documents"], d["duplicates"], d["rejects"], d["characters"], d["stored_bytes"])
            for d in days[::-1]]
    listing = table(["ingest_date", "documents", "duplicates", "rejects", "characters", "stored bytes"], rows,
                    numeric=(1, 2, 3, 4, 5))
    return section("dates", "Per ingest date", panel("Documents, duplicates and rejects", chart),
                    panel("Characters and stored bytes", volume), panel("Per date", listing, wide=True))


def _languages(data: ReportData) -> str:
    langs = data.languages[:15]
    if not langs:
        return section("languages", "Languages", panel("Nothing yet", "<p>No documents in scope.</p>"))
    names = [x["lang"] for x in langs]
    bars = charts.hbars(names, [x["documents"] for x in langs], "documents", second=[x["unique"] for x in langs],
                        second_label="unique")
    scored = [x for x in langs if x["lang_score"]]
    boxes = charts.lang_score_boxes([x["lang"] for x in scored], [x["lang_score"] for x in scored]) if scored else ""
    rows = [(x["lang"], x["documents"], x["unique"], f'{100 * x["share"]:.1f}%',
             x["lang_score"][2] if x["lang_score"] else "") for x in data.languages]
    listing = table(["lang", "documents", "unique", "share", "median q_lang_score"], rows, numeric=(1, 2, 3, 4))
    panels = [panel("Documents per language", bars)]
    if boxes:
        panels.append(panel("Language-id confidence (q_lang_score)", boxes))
    return section("languages", "Languages", *panels, panel("All languages", listing))


def _sites(data: ReportData) -> str:
    top, no_url = data.sites
    note = f"{no_url:,} document(s) have no URL." if no_url else ""
    if not top:
        return section("sites", "Top sites", panel("No URLs", "<p>No document in scope has a URL.</p>"), note=note)
    chart = charts.hbars([s["domain"] for s in top], [s["documents"] for s in top], "documents",
                         second=[s["unique"] for s in top], second_label="unique")
    listing = table(["registered domain", "documents", "unique"],
                    [(s["domain"], s["documents"], s["unique"]) for s in top], numeric=(1, 2))
    return section("sites", "Top sites (registered domain, from the Public Suffix List)",
                   panel("Documents per site", chart), panel("Top sites", listing), note=note)


def _quality(data: ReportData) -> str:
    hist = data.score_hist.get("")
    if not hist:
        return section("quality", "Quality", panel("Nothing yet", "<p>No scored documents in scope.</p>"))
    overall = charts.score_histogram(hist[0], hist[1], data.cut)
    top = [x["lang"] for x in data.languages[:6] if x["lang"] in data.score_hist]
    per_lang = charts.score_by_language([(lang, data.score_hist[lang][0]) for lang in top], data.cut)
    panels = [panel("Quality score, all documents", overall), panel("Kept documents per top language", per_lang)]
    if data.drivers:
        drivers = data.drivers[:12]
        chart = charts.hbars([f'{d["label"]}' for d in drivers], [d["documents"] for d in drivers],
                             "sampled low-score documents it pulls down most")
        rows = [(d["label"], Markup(f'<span class=mono>{esc(d["signal"])}</span>'), d["documents"],
                 f'{100 * d["share"]:.0f}%', d["mean_pull"]) for d in data.drivers]
        listing = table(["what pulls the score down", "signal", "documents", "share", "mean logit pull"], rows,
                        numeric=(2, 3, 4))
        panels += [panel(f"What drives a score under {data.cut:g} ({data.low_sampled:,} sampled)", chart),
                   panel("Low-score drivers", listing)]
    return section("quality", "Quality", *panels,
                   note=f"Dashed line: the cut quality.default_cut = {data.cut:g} (informational; nothing is dropped).")


def _duplicates(data: ReportData) -> str:
    if not data.dup_kinds:
        return section("duplicates", "Duplicates", panel("None", "<p>No duplicates in scope.</p>"))
    kinds = charts.hbars(list(data.dup_kinds), list(data.dup_kinds.values()), "duplicates",
                         colors=[charts.PALETTE[i % 8] for i in range(len(data.dup_kinds))])
    panels = [panel("Duplicates by kind", kinds)]
    panels += [panel(f"Cluster of {c['duplicates']:,} duplicate(s)", _cluster(c), wide=True) for c in data.clusters]
    return section("duplicates", "Duplicates", *panels, note=esc(KEEP_POLICY))


def _cluster(cluster: dict[str, Any]) -> str:
    kept = cluster["kept"]
    members = ([kept] if kept else []) + cluster["members"]
    rows = [("kept" if not m["is_duplicate"] else m["dup_kind"] or "duplicate",
             Markup(f"<b>{esc(m['title'] or '(no title)')}</b><br>{link(m['url']) or esc(m['source_uri'])}"),
             m["dup_similarity"], m["dup_containment"], m["quality_score"], m["n_chars"], m["run_id"])
            for m in members]
    listing = table(["role", "title / url", "similarity", "containment", "quality", "chars", "run"], rows,
                    numeric=(2, 3, 4, 5), classes=["kept" if not m["is_duplicate"] else "" for m in members])
    shown = len(cluster["members"])
    more = f"<p class=muted>and {cluster['duplicates'] - shown:,} more</p>" if cluster["duplicates"] > shown else ""
    return f"<p class=muted>Kept: {esc(why_kept(cluster))}</p>{listing}{more}"


def why_kept(cluster: dict[str, Any]) -> str:
    """Which rule of the keep policy chose this cluster's kept document."""
    kept, members = cluster["kept"], cluster["members"]
    if kept is None:
        return f"doc_id {cluster['cluster']} (not among the documents read for this report)"
    if any(m["run_id"] != kept["run_id"] for m in members):
        return f"already in the lake from run {kept['run_id']} (lake documents stay kept)"
    if any(m["dup_kind"] == "contained" for m in members):
        return "its text contains the duplicates' text"
    if all((m["quality_score"] or 0.0) < (kept["quality_score"] or 0.0) for m in members):
        return "the highest quality score"
    return "highest quality score, then the longest text, then the smallest doc_id"


def _rejects(data: ReportData) -> str:
    reasons = data.reject_reasons
    if not reasons:
        return section("rejects", "Rejects", panel("None", "<p>No rejects in scope.</p>"))
    stages = sorted({r["stage"] for r in reasons})
    colors = [charts.PALETTE[stages.index(r["stage"]) % 8] for r in reasons[:25]]
    chart = charts.hbars([f'{r["stage"]}/{r["reason"]}' for r in reasons[:25]], [r["count"] for r in reasons[:25]],
                         "rejected units", colors=colors)
    rows = [(r["stage"], Markup(f'<span class=mono>{esc(r["reason"])}</span>'), r["count"],
             Markup("<br>".join(f'<span class=mono>{esc(e["source_uri"])}</span>: {esc(e["detail"])}'
                                for e in r["examples"]))) for r in reasons]
    listing = table(["stage", "reason", "units", "examples (source_uri: detail)"], rows, numeric=(2,))
    return section("rejects", "Rejects by stage and reason", panel("Rejects", chart),
                   panel("Reasons and examples", listing, wide=True))


def _samples(data: ReportData) -> str:
    panels = []
    for band, docs in data.samples.items():
        items = "".join(_sample(d) for d in docs) or "<p class=muted>No kept document in this band.</p>"
        panels.append(panel(f"{band} quality", items))
    return section("samples", "Random kept documents by quality", *panels,
                   note="Bands: low under 1/3, middle 1/3 to 2/3, high from 2/3; first lines of the text.")


def _sample(doc: dict[str, Any]) -> str:
    lines = [line for line in (doc["text"] or "").splitlines() if line.strip()][:6]
    title = esc(doc["title"] or "(no title)")
    head = f"<b>{title}</b> <span class=muted>· {esc(doc['lang'])} · score {number(doc['quality_score'])}</span>"
    where = f"<br>{link(doc['url'])}" if doc["url"] else ""
    return f'<div class="sample"><p>{head}{where}</p><div class="text">{esc(chr(10).join(lines))}</div></div>'
