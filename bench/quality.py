"""Quality scoring benchmark: ROC AUC per junk kind (held-out groups), gold pass rates, seeds, docs/s.

Usage: ``.venv/bin/python -m bench.quality [--rebuild]`` from the repository root. The labelled dev set is
the one ``tools/train_quality.py`` trains on (``bench/quality_devset.py``: same seed, same cache); AUC and the
per-language keep rates are measured on the test side of the split by source document, which the model never saw.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from collections import Counter, defaultdict

import numpy as np

from bench.quality_devset import Example, cache_path, is_test, load_dataset
from bench.support.paths import REPO, corpora_dir
from flows.language import detect_language
from flows.quality import QualityConfig, quality_score, quality_signals

# Literature thresholds as (signal, op, value, source); pass = the gold article satisfies the rule.
THRESHOLDS: tuple[tuple[str, str, float, str], ...] = (
    ("q_word_count", ">=", 50, "Gopher"),
    ("q_word_count", "<=", 100_000, "Gopher"),
    ("q_mean_word_length", ">=", 3, "Gopher (n/a for CJK)"),
    ("q_mean_word_length", "<=", 10, "Gopher"),
    ("q_symbol_word_ratio", "<=", 0.1, "Gopher"),
    ("q_bullet_line_frac", "<=", 0.9, "Gopher"),
    ("q_ellipsis_line_frac", "<=", 0.3, "Gopher"),
    ("q_alpha_word_frac", ">=", 0.8, "Gopher"),
    ("q_stop_word_count", ">=", 2, "Gopher"),
    ("q_stop_word_frac", ">=", 0.3, "jusText/NeMo (per paragraph)"),
    ("q_dup_line_frac", "<=", 0.30, "Gopher"),
    ("q_dup_para_frac", "<=", 0.30, "Gopher"),
    ("q_dup_line_char_frac", "<=", 0.20, "Gopher"),
    ("q_dup_para_char_frac", "<=", 0.20, "Gopher"),
    ("q_top_2gram_char_frac", "<=", 0.20, "Gopher"),
    ("q_top_3gram_char_frac", "<=", 0.18, "Gopher"),
    ("q_top_4gram_char_frac", "<=", 0.16, "Gopher"),
    ("q_dup_5gram_char_frac", "<=", 0.15, "Gopher"),
    ("q_dup_6gram_char_frac", "<=", 0.14, "Gopher"),
    ("q_dup_7gram_char_frac", "<=", 0.13, "Gopher"),
    ("q_dup_8gram_char_frac", "<=", 0.12, "Gopher"),
    ("q_dup_9gram_char_frac", "<=", 0.11, "Gopher"),
    ("q_dup_10gram_char_frac", "<=", 0.10, "Gopher"),
    ("q_javascript_line_frac", "<=", 0.0, "C4 (drops such lines)"),
    ("q_policy_line_frac", "<=", 0.0, "C4 (drops such lines)"),
    ("q_lorem_ipsum", "<=", 0.0, "C4"),
    ("q_curly_brace_frac", "<=", 0.0, "C4"),
    ("q_line_punct_frac", ">=", 0.12, "FineWeb"),
    ("q_short_line_frac", "<=", 0.67, "FineWeb"),
    ("q_char_dup_frac", "<=", 0.01, "FineWeb"),
    ("q_newline_word_ratio", "<=", 0.3, "FineWeb"),
    ("q_lang_score", ">=", 0.65, "FineWeb/datatrove LID"),
)


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half: P(score of a good text > score of a junk text)."""
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    scores = np.concatenate([pos, neg])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(scores.size)
    ranks[order] = np.arange(1, scores.size + 1)
    for value in np.unique(scores):  # average ranks over ties
        tied = scores == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def score_all(examples: list[Example]) -> tuple[list[dict[str, float]], np.ndarray, float]:
    """Signals and scores of every example, and the CPU time spent computing them.

    CPU time of this process, not wall time: the machine is shared, and docs/s per core is the claim.
    """
    start = time.process_time()
    signals = [quality_signals(e.text, e.lang, e.lang_score) for e in examples]
    scores = np.asarray([quality_score(s, e.lang) for s, e in zip(signals, examples, strict=True)])
    return signals, scores, time.process_time() - start


def report_auc(examples: list[Example], scores: np.ndarray) -> None:
    test = np.asarray([is_test(e.group) for e in examples])
    kinds = np.asarray([e.kind for e in examples])
    good = scores[test & (kinds == "gold")]
    print(f"\n== ROC AUC on held-out groups (good test articles: {good.size}) ==")
    print(f"{'junk kind':<22}{'n_test':>8}{'AUC':>8}{'junk >= cut':>13}")
    cut = QualityConfig().default_cut
    for kind in sorted(set(kinds) - {"gold"}):
        bad = scores[test & (kinds == kind)]
        print(f"{kind:<22}{bad.size:>8}{roc_auc(good, bad):>8.4f}{(bad >= cut).mean():>13.3f}")
    bad = scores[test & (kinds != "gold")]
    print(f"{'OVERALL':<22}{bad.size:>8}{roc_auc(good, bad):>8.4f}{(bad >= cut).mean():>13.3f}")


def _keep_table(title: str, rows: list[tuple[Example, float]], cut: float) -> None:
    """Kept/total per detected language, test side and all rows."""
    kept: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for e, score in rows:
        kept[str(e.lang)].append((is_test(e.group), bool(score >= cut)))
    print(f"{title}\n{'lang':<8}{'test kept':>12}{'all kept':>12}{'rate':>8}")
    for lang in sorted(kept, key=lambda k: (-len(kept[k]), k)):
        test = [k for t, k in kept[lang] if t]
        both = [k for _, k in kept[lang]]
        test_cell = f"{sum(test)}/{len(test)}" if test else "-"
        print(f"{lang:<8}{test_cell:>12}{f'{sum(both)}/{len(both)}':>12}{sum(both) / len(both):>8.3f}")
    total = [k for values in kept.values() for _, k in values]
    print(f"{'ALL':<8}{'':>12}{f'{sum(total)}/{len(total)}':>12}{sum(total) / max(1, len(total)):>8.3f}")


def report_keep_rates(examples: list[Example], scores: np.ndarray) -> None:
    cut = QualityConfig().default_cut
    gold = [(e, float(s)) for e, s in zip(examples, scores, strict=True) if e.kind == "gold"]
    human = [(e, s) for e, s in gold if not e.group.startswith("trafilatura_eval:")]
    silver = [(e, s) for e, s in gold if e.group.startswith("trafilatura_eval:")]
    print(f"\n== good texts kept at the default cut {cut} ==")
    _keep_table("-- human gold (scrapinghub_aeb, mozilla_readability, cleaneval, cleanportaleval) --", human, cut)
    _keep_table("-- silver: trafilatura_eval pages, trafilatura extract with every 'with' snippet --", silver, cut)


def report_cut_tradeoff(examples: list[Example], scores: np.ndarray) -> None:
    """What other cuts would keep, so a reader can pick a threshold for a curated subset."""
    gold = np.asarray([e.kind == "gold" for e in examples])
    print("\n== cut trade-off (all rows): good kept vs junk kept ==")
    print(f"{'cut':>5}{'good kept':>11}{'junk kept':>11}")
    for cut in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        print(f"{cut:>5.1f}{(scores[gold] >= cut).mean():>11.3f}{(scores[~gold] >= cut).mean():>11.3f}")


def _passes(value: float, op: str, threshold: float) -> bool:
    return value >= threshold if op == ">=" else value <= threshold


def report_signal_pass_rates(examples: list[Example], signals: list[dict[str, float]]) -> None:
    gold = [(e, s) for e, s in zip(examples, signals, strict=True) if e.kind == "gold"]
    english = [s for e, s in gold if e.lang == "en"]
    other = [s for e, s in gold if e.lang != "en"]
    print(
        f"\n== per-signal pass rates on gold articles vs literature thresholds (en {len(english)}, "
        f"non-en {len(other)}) =="
    )
    print(f"{'rule':<36}{'en':>7}{'non-en':>8}  source")
    for name, op, value, source in THRESHOLDS:
        en_rate = np.mean([_passes(s[name], op, value) for s in english])
        other_rate = np.mean([_passes(s[name], op, value) for s in other])
        print(f"{name + ' ' + op + ' ' + format(value, 'g'):<36}{en_rate:>7.3f}{other_rate:>8.3f}  {source}")


def postlight_extracts() -> list[tuple[str, str]]:
    """(id, trafilatura extract) of every postlight_fixtures page (EN + JA news/blogs, no gold), cached."""
    path = cache_path().with_name("quality_postlight_extracts.json")
    if path.exists():
        return [(str(i), str(t)) for i, t in json.loads(path.read_text(encoding="utf-8"))]
    import trafilatura

    base = corpora_dir() / "postlight_fixtures"
    out = []
    for line in (base / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        raw = (base / row["html_path"]).read_bytes()
        html = gzip.decompress(raw) if row["html_path"].endswith(".gz") else raw
        text = trafilatura.extract(html, include_comments=False, include_tables=True) or ""
        out.append((str(row["id"]), "\n\n".join(p for p in text.split("\n") if p.strip())))
    path.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return out


def report_postlight() -> None:
    """Unlabelled real pages through a trafilatura extract: how much the cut keeps per language."""
    cut = QualityConfig().default_cut
    kept: dict[str, list[bool]] = defaultdict(list)
    dropped = []
    for page, text in postlight_extracts():
        if not text.strip():
            continue
        lang, conf = detect_language(text)
        score = quality_score(quality_signals(text, lang, conf), lang)
        kept[str(lang)].append(score >= cut)
        if score < cut:
            dropped.append(f"{page} ({lang}, {score:.2f})")
    print(f"\n== postlight_fixtures trafilatura extracts (unlabelled real pages) kept at {cut} ==")
    print("  ".join(f"{lang} {sum(v)}/{len(v)}" for lang, v in sorted(kept.items(), key=lambda kv: -len(kv[1]))))
    print("below the cut: " + ", ".join(dropped))


def report_seeds() -> None:
    print("\n== seeds (raw files, before chrome removal) ==")
    for path in sorted((REPO / "seeds").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        lang, conf = detect_language(text)
        score = quality_score(quality_signals(text, lang, conf), lang)
        print(f"{path.name:<28} lang={lang} score={score:.3f}")


def report_speed(examples: list[Example]) -> None:
    """docs/s on article-length gold texts (signals + score), one process, one core."""
    articles = [e for e in examples if e.kind == "gold" and 300 <= len(e.text.split()) <= 3000]
    words = np.mean([len(e.text.split()) for e in articles])
    best = 0.0
    for _ in range(3):  # best of three: the machine is shared
        _, _, elapsed = score_all(articles)
        best = max(best, len(articles) / elapsed)
    print(f"\n== speed: {len(articles)} gold articles of 300-3000 words (mean {words:.0f}) ==")
    load = os.getloadavg()[0]
    print(f"docs/s per core (signals + score, CPU time of one process, best of 3): {best:.0f}")
    print(f"(1-min load average {load:.1f} on {os.cpu_count()} CPUs while measuring; contention lowers this)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached dev set")
    examples = load_dataset(parser.parse_args().rebuild)
    signals, scores, _ = score_all(examples)
    counts = Counter(e.kind for e in examples)
    print(
        f"dev set: {len(examples)} texts, {counts['gold']} good; split by source document, "
        f"test = {sum(is_test(e.group) for e in examples)} texts"
    )
    report_auc(examples, scores)
    report_keep_rates(examples, scores)
    report_cut_tradeoff(examples, scores)
    report_signal_pass_rates(examples, signals)
    report_postlight()
    report_seeds()
    report_speed(examples)


if __name__ == "__main__":
    main()
