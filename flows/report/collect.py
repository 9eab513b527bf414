"""Everything the lake report shows, gathered from the lake in one pass of queries (``collect``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flows.report import queries
from flows.report.drivers import low_score_drivers


@dataclass
class ReportData:
    """The numbers, clusters, rejects and samples of one report (the whole lake, or one run)."""

    lake: str
    run_id: str | None
    generated: str
    manifests: list[dict[str, Any]]
    cut: float
    totals: dict[str, int]
    per_date: list[dict[str, Any]] = field(default_factory=list)
    languages: list[dict[str, Any]] = field(default_factory=list)
    sites: tuple[list[dict[str, Any]], int] = ([], 0)
    score_hist: dict[str, list[list[int]]] = field(default_factory=dict)
    drivers: list[dict[str, Any]] = field(default_factory=list)
    low_sampled: int = 0
    dup_kinds: dict[str, int] = field(default_factory=dict)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    reject_reasons: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def collect(lake: queries.Lake) -> ReportData:
    """Run every query of the report over the open lake."""
    cut = queries.quality_cut(lake)
    low = queries.low_score_sample(lake, cut)
    return ReportData(
        lake=lake.store.url(),
        run_id=lake.run_id,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        manifests=lake.manifests,
        cut=cut,
        totals=queries.totals(lake),
        per_date=queries.per_date(lake),
        languages=queries.languages(lake),
        sites=queries.sites(lake),
        score_hist=queries.score_histogram(lake),
        drivers=low_score_drivers(low),
        low_sampled=len(low),
        dup_kinds=queries.dup_kinds(lake),
        clusters=queries.largest_clusters(lake),
        reject_reasons=queries.reject_reasons(lake),
        samples=queries.samples(lake),
    )
