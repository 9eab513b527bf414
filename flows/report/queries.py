"""The lake report's numbers: duckdb SQL over the lake's Parquet, reading only the columns each query needs.

``open_lake`` makes a duckdb connection with two views, ``docs`` and ``rejects``, over the tables' data
files (the names readers see: no ``_``/``.`` parts, so ``_reports``, ``_runs`` and staging leftovers are
never read). With a run id the views read that run's files only. A bucket lake is read through its fsspec
filesystem registered with duckdb (duckdb's ``httpfs`` is not needed). Samples use reservoir sampling
with a fixed seed, so the same lake gives the same page.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from flows import lake as lakefs
from flows.quality import SIGNAL_NAMES
from flows.storage import Store

MEMORY_LIMIT = "400MB"
"""duckdb's own memory limit; with Python, pyarrow and matplotlib the process stays under 1 GB."""
THREADS = 2
SEED = 20261203
SCORE_BINS = 20
_HOST = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^@/?#]*@)?\[?([^/?#:\]]+)"
_PARTITION = re.compile(rf"(?:^|/){lakefs.PARTITION_KEY}=([^/]+)/")


class LakeNotFoundError(LookupError):
    """No lake at the given place (no documents, rejects or run manifests there)."""


class UnknownRunError(LookupError):
    """The run id is not one of the lake's committed runs."""

    def __init__(self, run_id: str, known: Sequence[str]) -> None:
        listed = ", ".join(known[-20:]) or "none"
        more = f" (the last 20 of {len(known)})" if len(known) > 20 else ""
        super().__init__(f"no committed run {run_id!r} in this lake; known runs{more}: {listed}")
        self.known = list(known)


@dataclass
class Lake:
    """An open connection to the lake's tables, for the whole lake or one run."""

    store: Store
    run_id: str | None
    con: duckdb.DuckDBPyConnection
    manifests: list[dict[str, Any]]
    files: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    """Per table, the data files read (key, size in bytes)."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of ``sql`` (duckdb 2.0 relations have no ``fetchone``: always ``fetchall``)."""
        return self.con.execute(sql, list(params)).fetchall()

    @property
    def where_run(self) -> str:
        return "" if self.run_id is None else " (run " + self.run_id + ")"


def open_lake(store: Store, run_id: str | None = None) -> Lake:
    """A duckdb connection with ``docs``/``rejects`` views (and ``all_docs``: the whole lake's documents,
    for the kept members of a run's clusters). Raises ``LakeNotFoundError`` or ``UnknownRunError``."""
    manifests = sorted(lakefs.read_manifests(store), key=lambda m: str(m.get("run_id", "")))
    files = {table: lakefs.table_file_sizes(store, table) for table in (lakefs.DOCUMENTS, lakefs.REJECTS)}
    if not manifests and not any(files.values()):
        raise LakeNotFoundError(f"no siftlake lake at {store.url()}: it has no documents/, rejects/ or _runs/ "
                                "(run `siftlake ingest SOURCE --lake LAKE` first, or pass the lake's folder or URI)")
    if run_id is not None:
        known = [str(m["run_id"]) for m in manifests]
        if run_id not in known:
            raise UnknownRunError(run_id, known)
        manifests = [m for m in manifests if m["run_id"] == run_id]
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "threads": THREADS,
                                 "preserve_insertion_order": False})
    if store.remote:
        con.register_filesystem(store.fs)
    lake = Lake(store, run_id, con, manifests)
    for view, table in (("docs", lakefs.DOCUMENTS), ("rejects", lakefs.REJECTS)):
        chosen = [(k, s) for k, s in files[table] if run_id is None or lakefs.run_of_file(k) == run_id]
        lake.files[table] = chosen
        _create_view(lake, view, [k for k, _ in chosen], _empty_schema(table))
    _create_view(lake, "all_docs", [k for k, _ in files[lakefs.DOCUMENTS]], _empty_schema(lakefs.DOCUMENTS))
    return lake


def _empty_schema(table: str) -> pa.Schema:
    schema = lakefs.documents_schema(SIGNAL_NAMES) if table == lakefs.DOCUMENTS else lakefs.REJECTS_SCHEMA
    return schema.append(pa.field(lakefs.PARTITION_KEY, pa.date32()))


def _create_view(lake: Lake, view: str, keys: list[str], schema: pa.Schema) -> None:
    """``view`` over the files (an empty table of the schema when there are none)."""
    if not keys:
        lake.con.register(f"{view}_empty", schema.empty_table())
        lake.con.execute(f"create view {view} as select * from {view}_empty")
        return
    listed = ", ".join("'" + lake.store.url(key).replace("'", "''") + "'" for key in keys)
    where = "" if lake.run_id is None or view == "all_docs" else " where run_id = " + _literal(lake.run_id)
    lake.con.execute(f"create view {view} as select * from read_parquet([{listed}], hive_partitioning=true, "
                     f"union_by_name=true){where}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- the numbers ---------------------------------------------------------------------------------


def totals(lake: Lake) -> dict[str, int]:
    """Documents, duplicates, characters and rejects of the scope."""
    docs = lake.rows("select count(*), count_if(is_duplicate), coalesce(sum(n_chars), 0) from docs")[0]
    rejected = lake.rows("select count(*) from rejects")[0][0]
    stored = sum(size for files in lake.files.values() for _, size in files)
    return {"documents": int(docs[0]), "duplicates": int(docs[1]), "unique": int(docs[0]) - int(docs[1]),
            "characters": int(docs[2]), "rejects": int(rejected), "stored_bytes": stored,
            "runs": len(lake.manifests)}


def per_date(lake: Lake) -> list[dict[str, Any]]:
    """Per ingest date: documents, duplicates, characters, rejects and the bytes its Parquet files hold."""
    rows: dict[str, dict[str, Any]] = {}

    def day(date: str) -> dict[str, Any]:
        return rows.setdefault(date, {"date": date, "documents": 0, "duplicates": 0, "characters": 0,
                                      "rejects": 0, "stored_bytes": 0})

    for date, n, dups, chars in lake.rows("select ingest_date::varchar, count(*), count_if(is_duplicate), "
                                          "coalesce(sum(n_chars), 0) from docs group by 1"):
        day(str(date)).update(documents=int(n), duplicates=int(dups), characters=int(chars))
    for date, n in lake.rows("select ingest_date::varchar, count(*) from rejects group by 1"):
        day(str(date))["rejects"] = int(n)
    for files in lake.files.values():
        for key, size in files:
            found = _PARTITION.search(key)
            if found:
                day(found.group(1))["stored_bytes"] += size
    return [rows[d] for d in sorted(rows)]


def languages(lake: Lake) -> list[dict[str, Any]]:
    """Documents per language (unique among them) with the quartiles of fastText's ``q_lang_score``."""
    sql = ("select coalesce(lang, '(none)'), count(*), count_if(not is_duplicate), "
           "approx_quantile(q_lang_score, [0.05, 0.25, 0.5, 0.75, 0.95]) from docs group by 1 order by 2 desc, 1")
    rows = lake.rows(sql)
    total = sum(int(r[1]) for r in rows) or 1
    return [{"lang": lang, "documents": int(n), "unique": int(unique), "share": int(n) / total,
             "lang_score": [float(q) for q in quantiles] if quantiles and None not in quantiles else []}
            for lang, n, unique, quantiles in rows]


def sites(lake: Lake, top: int = 20) -> tuple[list[dict[str, Any]], int]:
    """The ``top`` registered domains (eTLD+1 from the Public Suffix List that ``tld`` ships) by documents,
    and the number of documents without a URL."""
    from tld import get_fld

    hosts = lake.rows(f"select lower(nullif(regexp_extract(url, '{_HOST}', 1), '')) as host, count(*), "
                      "count_if(not is_duplicate) from docs group by 1")
    counts: Counter[str] = Counter()
    unique: Counter[str] = Counter()
    no_url = 0
    for host, n, kept in hosts:
        if host is None:
            no_url += int(n)
            continue
        domain = get_fld(host, fix_protocol=True, fail_silently=True) or host
        counts[str(domain)] += int(n)
        unique[str(domain)] += int(kept)
    return [{"domain": d, "documents": n, "unique": unique[d]} for d, n in counts.most_common(top)], no_url


def score_histogram(lake: Lake) -> dict[str, list[list[int]]]:
    """Quality-score histogram (``SCORE_BINS`` bins over 0..1) per language: ``{lang: [kept, duplicates]}``
    with one count per bin in each list; the key ``""`` holds every language."""
    sql = (f"select coalesce(lang, '(none)'), least(floor(quality_score * {SCORE_BINS}), {SCORE_BINS - 1})::int, "
           "is_duplicate, count(*) from docs where quality_score is not null group by all")
    out: dict[str, list[list[int]]] = {}
    for lang, bin_, dup, n in lake.rows(sql):
        for key in ("", str(lang)):
            hist = out.setdefault(key, [[0] * SCORE_BINS, [0] * SCORE_BINS])
            hist[1 if dup else 0][max(0, int(bin_))] += int(n)
    return out


def low_score_sample(lake: Lake, cut: float, size: int = 2000) -> list[dict[str, Any]]:
    """Up to ``size`` documents scored under ``cut`` (a reservoir sample), with their signals."""
    columns = ", ".join(f'"{name}"' for name in SIGNAL_NAMES)
    sql = (f"select lang, {columns} from (select lang, {columns} from docs where quality_score < ?) "
           f"using sample reservoir({int(size)} rows) repeatable ({SEED})")
    names = ["lang", *SIGNAL_NAMES]
    return [dict(zip(names, row, strict=True)) for row in lake.rows(sql, [cut])]


def dup_kinds(lake: Lake) -> dict[str, int]:
    rows = lake.rows("select coalesce(dup_kind, 'unknown'), count(*) from docs where is_duplicate group by 1")
    return {str(kind): int(n) for kind, n in sorted(rows, key=lambda r: -int(r[1]))}


_MEMBER_COLUMNS = ("doc_id", "dup_cluster", "title", "url", "source_uri", "is_duplicate", "dup_kind",
                   "dup_similarity", "dup_containment", "quality_score", "n_chars", "run_id")


def largest_clusters(lake: Lake, top: int = 8, members: int = 12) -> list[dict[str, Any]]:
    """The ``top`` clusters with the most duplicates in scope, each with its kept document (from the whole
    lake: it may come from an earlier run) and up to ``members`` duplicates, most similar first."""
    biggest = lake.rows("select dup_cluster, count(*) from docs where is_duplicate group by 1 "
                        f"order by 2 desc, 1 limit {int(top)}")
    if not biggest:
        return []
    ids = [str(c) for c, _ in biggest]
    listed = ", ".join(_literal(c) for c in ids)
    columns = ", ".join(_MEMBER_COLUMNS)
    dups = lake.rows(f"select {columns} from docs where is_duplicate and dup_cluster in ({listed}) qualify "
                     "row_number() over (partition by dup_cluster order by dup_similarity desc, doc_id) "
                     f"<= {int(members)}")
    kept = lake.rows(f"select {columns} from all_docs where doc_id in ({listed}) and not is_duplicate")
    by_cluster: dict[str, dict[str, Any]] = {c: {"cluster": c, "duplicates": int(n), "kept": None, "members": []}
                                             for c, n in biggest}
    for row in kept:
        by_cluster[str(row[0])]["kept"] = dict(zip(_MEMBER_COLUMNS, row, strict=True))
    for row in sorted(dups, key=lambda r: (-(r[7] or 0.0), str(r[0]))):
        by_cluster[str(row[1])]["members"].append(dict(zip(_MEMBER_COLUMNS, row, strict=True)))
    return [by_cluster[c] for c in ids]


def reject_reasons(lake: Lake, examples: int = 3) -> list[dict[str, Any]]:
    """Rejects per stage and reason, most frequent first, each with up to ``examples`` units."""
    counts = lake.rows("select stage, reason, count(*) from rejects group by 1, 2 order by 3 desc, 1, 2")
    sample = lake.rows("select stage, reason, source_uri, detail from rejects qualify row_number() over "
                       f"(partition by stage, reason order by hash(source_uri, {SEED})) <= {int(examples)}")
    found: dict[tuple[str, str], list[dict[str, str]]] = {}
    for stage, reason, uri, detail in sample:
        found.setdefault((str(stage), str(reason)), []).append({"source_uri": uri or "", "detail": detail or ""})
    return [{"stage": s, "reason": r, "count": int(n), "examples": found.get((str(s), str(r)), [])}
            for s, r, n in counts]


BANDS = (("low", 0.0, 1 / 3), ("middle", 1 / 3, 2 / 3), ("high", 2 / 3, 1.01))


def samples(lake: Lake, per_band: int = 3, chars: int = 600) -> dict[str, list[dict[str, Any]]]:
    """A random sample of kept documents per quality band, with the first ``chars`` characters of text.

    The ids are sampled first from three narrow columns; only the chosen rows' text is then read.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for band, low, high in BANDS:
        ids = [str(r[0]) for r in lake.rows(
            "select doc_id from (select doc_id from docs where not is_duplicate and quality_score >= ? "
            f"and quality_score < ?) using sample reservoir({int(per_band)} rows) repeatable ({SEED})",
            [low, high])]
        if not ids:
            out[band] = []
            continue
        listed = ", ".join(_literal(i) for i in ids)
        rows = lake.rows("select doc_id, title, url, lang, quality_score, left(text, ?) from docs "
                         f"where doc_id in ({listed}) order by quality_score", [chars])
        names = ("doc_id", "title", "url", "lang", "quality_score", "text")
        out[band] = [dict(zip(names, row, strict=True)) for row in rows]
    return out


def quality_cut(lake: Lake) -> float:
    """The ``quality.default_cut`` of the latest run in scope (0.5 when no manifest says)."""
    for manifest in reversed(lake.manifests):
        cut = manifest.get("config", {}).get("quality", {}).get("default_cut")
        if isinstance(cut, int | float):
            return float(cut)
    return 0.5
