"""The lake report (issue 24): ``siftlake report``, each run's page in the lake, its artifact summary, and
the page as a real browser shows it (Debian's Chromium through playwright). The report of the hostile corpus (every
reject reason with examples) is checked by tests/system/test_hostile.py, on the lake its flow test ingests."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from flows import cli
from flows.config import IngestConfig
from flows.quality import FEATURE_NAMES, SIGNAL_NAMES
from flows.report import build, charts, drivers, page, queries
from flows.storage import Store
from tests.report import browser, corpus
from tests.report.markup import audit
from tests.support.paths import REPO

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

SCREENSHOTS = REPO / "bench" / "out"


def ingest(source: Path, lake: Path, **fields: Any) -> dict[str, Any]:
    from flows.ingest import ingest as ingest_flow

    config = IngestConfig.model_validate({"source": str(source), "lake": str(lake),
                                          "runner": {"kind": "thread", "workers": 2}, **fields})
    return ingest_flow(config)


def run_ids(lake: Path) -> list[str]:
    return sorted(p.stem for p in (lake / "_runs").glob("*.json"))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, corpora: Path) -> Path:
    """Two runs: the report corpus, then a near copy and an excerpt of one of its articles."""
    root = tmp_path_factory.mktemp("report")
    lake = root / "lake"
    ingest(corpus.build(root, corpora), lake)
    later = root / "later"
    later.mkdir()
    near = [*corpus.ARTICLE[:7], "The vote was moved to the autumn because the study is late.", *corpus.ARTICLE[8:]]
    (later / "near.txt").write_text("\n\n".join(near), encoding="utf-8")
    (later / "fresh.txt").write_text("Ein kurzer Text über den Hafen. " * 20, encoding="utf-8")
    ingest(later, lake)
    return lake


@pytest.fixture(scope="module")
def whole(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("out") / "report.html"
    assert cli.main(["report", "--lake", str(lake), "--out", str(out)]) == 0
    return out, out.read_text(encoding="utf-8")


def test_each_run_writes_its_report_into_the_lake_outside_the_dataset(lake: Path) -> None:
    for run_id in run_ids(lake):
        page_text = (lake / "_reports" / f"{run_id}.html").read_text(encoding="utf-8")
        assert f"run {run_id}" in page_text and "<svg" in page_text
    # Readers of the dataset see documents and rejects only.
    n = duckdb.sql(f"select count(*) from read_parquet('{lake}/documents/**/*.parquet', hive_partitioning=true)")
    assert n.fetchall()[0][0] == len(pd.read_parquet(lake / "documents"))


def test_the_page_shows_languages_sites_duplicates_rejects_and_samples(whole: tuple[Path, str]) -> None:
    _, text = whole
    for section in ("dates", "languages", "sites", "quality", "duplicates", "rejects", "samples"):
        assert f'<section id="{section}">' in text
    assert ">en<" in text and ">de<" in text  # several languages, from trafilatura's multilingual pages
    assert ">zeit.de<" in text  # registered domains, not hosts
    for kind in ("exact", "near", "contained"):
        assert f">{kind}<" in text
    assert "Harbour plan" in text and "already in the lake from run" in text
    for reason in ("empty", "binary", "unsupported_type", "jsonl_invalid_json", "jsonl_missing_text"):
        assert f">{reason}<" in text
    assert "Content-Security-Policy" in text and "script-src &#x27;none&#x27;" not in text


def test_sites_are_counted_by_registered_domain(lake: Path) -> None:
    opened = queries.open_lake(Store(str(lake)))
    top, no_url = queries.sites(opened, top=100)
    domains = {s["domain"]: s["documents"] for s in top}
    assert domains["zeit.de"] == 2 and domains["example.co.uk"] == 1 and "news.example.co.uk" not in domains
    assert "javascript:alert(2)" not in domains and no_url >= 3


def test_data_text_stays_text(whole: tuple[Path, str]) -> None:
    _, text = whole
    assert html.escape(corpus.HOSTILE_TITLE) in text
    assert "<script" not in text.lower() and "onerror=" not in text.replace("onerror=&quot;", "")
    assert 'href="javascript' not in text.lower()
    assert audit(text) == []


def test_a_run_report_holds_that_run_only(lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = run_ids(lake)
    out = tmp_path / "run.html"
    assert cli.main(["report", "--lake", str(lake), "--run", second, "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert f"run {second}" in text and first not in text.split("<main>")[1].split('id="duplicates"')[0]
    manifest = json.loads((lake / "_runs" / f"{second}.json").read_text())
    assert f"wrote {out}: {manifest['counts']['documents']} documents" in capsys.readouterr().out


def test_clear_errors_for_a_missing_lake_or_an_unknown_run(lake: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--lake", str(tmp_path / "nothing"), "--out", str(tmp_path / "r.html")]) == 1
    assert "no siftlake lake at" in capsys.readouterr().err
    assert cli.main(["report", "--lake", str(lake), "--run", "nope", "--out", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert "no committed run 'nope'" in err and all(r in err for r in run_ids(lake))
    assert not (tmp_path / "r.html").exists()


def test_the_artifact_summary_names_titles_and_links_the_page(lake: Path) -> None:
    run_id = run_ids(lake)[0]
    where, data = build.write_run_report(Store(str(lake)), run_id)
    text = build.summary_markdown(data, where)
    assert "## Quality score" in text and f"]({where})" in text and where.endswith(f"_reports/{run_id}.html")
    assert "| Harbour plan | https://harbour.example.org/plan | 4 |" in text and "<script" not in text


@pytest.mark.parametrize("width", [1400, 390])
def test_the_page_renders_in_a_real_browser_offline_and_runs_no_script(whole: tuple[Path, str], tmp_path: Path,
                                                                      width: int) -> None:
    assert browser.available(), "needs Debian's chromium: make install, or apt-get install -y chromium as root"
    path, text = whole
    seen = browser.visit(path, tmp_path / f"report-{width}.png", width=width)
    assert seen.title.startswith("siftlake report")  # a script from the data would have had to change nothing
    assert seen.dialogs == [] and seen.scripts == 0
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.requests == [path.resolve().as_uri()]  # the file itself, nothing else
    assert len(seen.charts) == text.count('class="chart"') >= 8
    for chart in seen.charts:
        assert chart["width"] > 100 and chart["height"] > 50 and chart["shapes"] >= 3, chart
        assert chart["width"] <= width
    assert corpus.HOSTILE_TITLE in seen.body_text  # shown as characters
    assert not seen.overflow_x, "the page scrolls sideways (tables must scroll inside their panel)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / f"report-{width}.png", SCREENSHOTS / f"report-test-lake-{width}.png")


def test_every_model_input_names_its_signal() -> None:
    assert set(drivers.FEATURE_SIGNALS) == set(FEATURE_NAMES)
    assert {signal for signal, _ in drivers.FEATURE_SIGNALS.values()} <= set(SIGNAL_NAMES)


def test_markdown_and_chart_labels_are_inert() -> None:
    assert build.md("a | b <script>\n[x](javascript:y)") == r"a \| b \<script\> \[x\](javascript:y)"
    assert charts.label("$x$ " + "y" * 40) == "$x$ " + "y" * 27 + "…"
    assert page.link("javascript:alert(1)") == "javascript:alert(1)"
    assert page.link('https://a.example/"><b>') == ('<a href="https://a.example/&quot;&gt;&lt;b&gt;" '
                                                    'rel="noopener noreferrer nofollow">https://a.example/&quot;&gt;'
                                                    "&lt;b&gt;</a>")
