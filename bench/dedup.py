"""Duplicate detection benchmark (near and contained): accuracy, LSH recall, throughput, index size, memory.

    python -m bench.dedup                 # everything (about 3-6 min on one core)
    python -m bench.dedup --sweep         # plus the parameter sweeps that chose the defaults
    SIFTLAKE_CORPORA=/data/corpora python -m bench.dedup --extractor pipeline --cache /tmp/dedup
    python -m bench.dedup --lake-docs 100000 --skip-built   # quicker memory check

Sections:
1. signature throughput on article-length texts (scrapinghub_aeb gold), vs datasketch MinHash.bulk;
2. clough_plagiarism (answer, source) pairs: cut/light are duplicates (near or contained), non is not,
   heavy apart; cut recall also without the two answers whose source holds none of their text;
3. a built near-duplicate set: each scrapinghub_aeb gold article as HTML in 4 site templates with
   heavy shared chrome (cosmetic changes, ~1% of words edited, a short paragraph removed, an update
   line appended), negatives = other articles in the same templates and two-article mash-ups (halves
   equal in tokens), all
   run through the pipeline's extraction, then scored pairwise against the true clusters; plus the
   LSH's candidate recall against exact Jaccard computed by brute force;
4. a built containment set: each gold article as a page in one heavy template (the containers, and
   same-template negatives of each other), a teaser page of its first 30-55% in another template,
   a plain-text feed of its first 40-70%, and negatives: stories quoting two paragraphs of another
   article, and mash-ups of two articles' equal-sized halves; pairwise P/R, per-kind recall, the
   LSH's candidate recall against exact containment by brute force, and the containment estimators'
   error;
5. index bytes per document and peak RSS while resolving a batch against a synthetic 1,000,000-doc
   index (signatures only), in a child process so the number is that of the dedup alone.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

import flows.dedup as dedup
from bench.support.meters import cpu_seconds, peak_rss_mb
from bench.support.paths import REPO, corpora_dir
from flows.dedup.fingerprint import TOKEN_RE


def load_gold_texts() -> list[str]:
    with open(corpora_dir() / "scrapinghub_aeb" / "gold.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r["text"] for r in rows if r["text"].strip()]


# -- 1. throughput ------------------------------------------------------------------------------


def bench_throughput(config: dedup.DedupConfig, repeat: int) -> None:
    from datasketch import MinHash

    texts = load_gold_texts() * repeat
    words = np.mean([len(t.split()) for t in texts])
    print(f"\n## 1. Signature throughput ({len(texts)} scrapinghub_aeb gold texts, mean {words:.0f} words, 1 core)")
    sha = config.model_copy(update={"hash_function": "sha1_hash32"})
    base = cpu_seconds(
        lambda: MinHash.bulk(
            [[s.encode() for s in set(dedup.shingles(t, sha))] for t in texts],
            num_perm=config.num_perm,
            seed=config.seed,
        )
    )
    print(f"  datasketch MinHash.bulk (sha1_hash32, baseline): {len(texts) / base:7.0f} docs/s")
    runs = (("ours, sha1_hash32 (bit-identical to the baseline)", sha), (f"ours, {config.hash_function}", config))
    for name, cfg in runs:
        secs = cpu_seconds(lambda cfg=cfg: dedup.signatures(texts, cfg))  # type: ignore[misc]
        print(f"  {name:50s}: {len(texts) / secs:7.0f} docs/s  ({base / secs:.2f}x baseline)")


# -- scoring helpers ----------------------------------------------------------------------------


def decide(texts: Sequence[str], config: dedup.DedupConfig, ids: Sequence[str] | None = None) -> dedup.DedupDecisions:
    """Run the real resolve() on texts as one batch against an empty lake."""
    ids = list(ids) if ids is not None else [f"d{i:05d}" for i in range(len(texts))]
    sigs, sizes = dedup.fingerprints(texts, config)
    batch = dedup.DedupBatch(
        doc_ids=ids,
        content_hashes=[dedup.content_hash(t) for t in texts],
        signatures=sigs,
        quality=np.full(len(texts), 0.5),
        lengths=np.array([len(t) for t in texts]),
        sizes=sizes,
    )
    return dedup.resolve(batch, dedup.LakeIndex(Path("/nonexistent"), config, []), config)


def clusters_of(texts: Sequence[str], config: dedup.DedupConfig, ids: Sequence[str] | None = None) -> list[str]:
    """dup_cluster of each text (see ``decide``)."""
    return decide(texts, config, ids).dup_cluster


def pair_set(labels: Sequence[object]) -> set[tuple[int, int]]:
    groups: dict[object, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        groups[label].append(i)
    return {p for members in groups.values() for p in itertools.combinations(members, 2)}


def prf(predicted: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float, float]:
    tp = len(predicted & truth)
    p = tp / len(predicted) if predicted else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def id_sets(texts: Iterable[str], config: dedup.DedupConfig) -> list[set[int]]:
    return [set(dedup.shingle_ids(t, config).tolist()) for t in texts]


# -- 2. clough ----------------------------------------------------------------------------------


def load_clough() -> tuple[list[str], list[str], list[tuple[int, int, str]]]:
    root = corpora_dir() / "clough_plagiarism"
    with open(root / "gold.jsonl", encoding="utf-8") as f:
        gold = [json.loads(line) for line in f]
    paths = sorted({g["source_path"] for g in gold}) + [g["text_path"] for g in gold]
    ids = [Path(p).stem for p in paths]
    texts = [(root / p).read_text(encoding="utf-8", errors="replace") for p in paths]
    pos = {p: i for i, p in enumerate(paths)}
    pairs = [(pos[g["text_path"]], pos[g["source_path"]], g["category"]) for g in gold]
    return ids, texts, pairs


# `cut` answers that copy Wikipedia text their labelled source does not hold (0.00 and 0.01 of their
# word 3-grams are in it): no text-similarity rule can pair them, so recall is also given without them.
CLOUGH_CUT_NOT_FROM_SOURCE = ("g2pE_taskc", "g4pD_taskb")


def bench_clough(config: dedup.DedupConfig) -> None:
    ids, texts, pairs = load_clough()
    decisions = decide(texts, config, ids)
    clusters = decisions.dup_cluster
    sets = id_sets(texts, config)
    print(f"\n## 2. clough_plagiarism dev: {len(pairs)} (answer, source) pairs, threshold {config.threshold}, "
          f"containment {config.containment_threshold} (Wilson z {config.containment_z})")
    print("  category  pairs  flagged  share   kinds                    exact Jaccard of each pair (sorted)")
    for cat in ("cut", "light", "heavy", "non"):
        mine = [(a, s) for a, s, c in pairs if c == cat]
        flagged = [(a, s) for a, s in mine if clusters[a] == clusters[s]]
        kinds = defaultdict(int)
        for a, s in flagged:
            kinds[str(decisions.dup_kind[a] or decisions.dup_kind[s])] += 1
        js = sorted(round(jaccard(sets[a], sets[s]), 2) for a, s in mine)
        print(f"  {cat:8s} {len(mine):5d}  {len(flagged):7d}  {len(flagged) / len(mine):5.2f}   "
              f"{dict(kinds)!s:24s} {js}")
    copying = [(a, s) for a, s, c in pairs if c == "cut" and ids[a] not in CLOUGH_CUT_NOT_FROM_SOURCE]
    hits = [ids[a] for a, s in copying if clusters[a] == clusters[s]]
    missed = sorted(ids[a] for a, s in copying if clusters[a] != clusters[s])
    print(f"  cut recall without {', '.join(CLOUGH_CUT_NOT_FROM_SOURCE)} (whose source holds none of their text): "
          f"{len(hits) / len(copying):.3f} ({len(hits)} of {len(copying)}); missed: "
          + ", ".join(f"{m} (containment {len(sets[ids.index(m)] & sets[s]) / len(sets[ids.index(m)]):.2f})"
                      for m in missed for a, s in copying if ids[a] == m))
    pos = [(a, s) for a, s, c in pairs if c in ("cut", "light")]
    neg = [(a, s) for a, s, c in pairs if c == "non"]
    tp = sum(clusters[a] == clusters[s] for a, s in pos)
    fp = sum(clusters[a] == clusters[s] for a, s in neg)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / len(pos)
    print(f"  cut+light vs non: precision {p:.3f}  recall {r:.3f}  F1 {2 * p * r / (p + r) if p + r else 0:.3f}")
    print(
        f"  non pairs flagged (false positives): {fp} of {len(neg)}"
        f"  -> precision on non pairs {1.0 if fp == 0 else 0.0:.1f}"
    )
    containment = [len(sets[a] & sets[s]) / max(len(sets[a]), 1) for a, s, c in pairs if c == "cut"]
    print(
        "  cut containment |A&S|/|A| (share of the answer's shingles in the source): "
        f"{sorted(round(c, 2) for c in containment)}"
    )
    reverse = [len(sets[a] & sets[s]) / max(len(sets[s]), 1) for a, s, c in pairs if c == "cut"]
    print(f"  cut containment |A&S|/|S| (share of the source's shingles in the answer): "
          f"{sorted(round(c, 2) for c in reverse)}")


# -- 3. built near-duplicate set ------------------------------------------------------------------

NAV = " ".join(
    f'<li><a href="/section/{w.lower()}">{w}</a></li>'
    for w in [
        "World",
        "US",
        "Politics",
        "Business",
        "Tech",
        "Science",
        "Health",
        "Sports",
        "Arts",
        "Books",
        "Style",
        "Food",
        "Travel",
        "Magazine",
        "Opinion",
        "Podcasts",
        "Video",
        "Weather",
        "Obituaries",
        "Corrections",
        "Markets",
        "Climate",
        "Education",
        "Real-Estate",
    ]
)
POPULAR = " ".join(
    f"<li><a href='/p/{i}'>{t}</a></li>"
    for i, t in enumerate(
        [
            "Ten things you missed this week in markets and money",
            "The quiet town that became a global hub for electric bikes",
            "Why sleep experts say you should stop checking your phone at night",
            "A guide to the best new restaurants opening this spring",
            "How a small startup plans to take on the biggest cloud providers",
            "Inside the race to build a better battery for the grid",
            "What the new tax rules mean for freelancers and small businesses",
            "The museum that lets visitors touch every single exhibit",
        ]
    )
)
LEGAL = (
    "Copyright 2020 Example Media Group. All rights reserved. Use of this site constitutes acceptance "
    "of our User Agreement and Privacy Policy and Cookie Statement and Your California Privacy Rights. "
    "The material on this site may not be reproduced, distributed, transmitted, cached or otherwise used, "
    "except with the prior written permission of Example Media Group. Ad Choices. Subscribe to our "
    "newsletter for the latest headlines delivered to your inbox every morning. Follow us on social media."
)
COOKIE = "We use cookies to improve your experience, personalise content and analyse traffic. By continuing you accept."


def _paras_html(paras: list[str], style: int) -> str:
    if style == 1:
        return "<br><br>\n".join(html.escape(p) for p in paras)
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paras)


TEMPLATES: list[Callable[[str, list[str], int], str]] = [
    lambda t, ps, s: (
        f"<html><head><title>{html.escape(t)} | The Daily Example</title></head><body>"
        f"<div class='cookie'>{COOKIE}</div><header><nav><ul>{NAV}</ul></nav></header>"
        f"<main><article><h1>{html.escape(t)}</h1><div class='byline'>By Staff Reporter</div>"
        f"{_paras_html(ps, s)}</article></main><aside><h3>Most popular</h3><ul>{POPULAR}</ul></aside>"
        f"<footer><p>{LEGAL}</p></footer></body></html>"
    ),
    lambda t, ps, s: (
        f"<html><head><title>{html.escape(t)}</title></head><body><div id='top'><ul class='menu'>{NAV}</ul></div>"
        f"<div class='wrap'><div class='sidebar'><h4>Trending now</h4><ol>{POPULAR}</ol>"
        f"<div class='newsletter'>Sign up for our free newsletter. Enter your email address to subscribe.</div></div>"
        f"<div class='post'><h2 class='post-title'>{html.escape(t)}</h2><div class='post-body entry-content'>"
        f"{_paras_html(ps, s)}</div><div class='share'>Share this article on Facebook Twitter LinkedIn Email</div>"
        f"</div></div><div id='footer'>{LEGAL} {COOKIE}</div></body></html>"
    ),
    lambda t, ps, s: (
        f"<html><head><title>{html.escape(t)} - News Portal</title></head><body>"
        f"<table width='100%'><tr><td colspan='2'><ul>{NAV}</ul></td></tr><tr><td class='left' width='20%'>"
        f"<b>Related stories</b><ul>{POPULAR}</ul></td><td class='main'><h1>{html.escape(t)}</h1>"
        f"<div class='story'>{_paras_html(ps, s)}</div></td></tr><tr><td colspan='2'><small>{LEGAL}</small>"
        f"</td></tr></table></body></html>"
    ),
    lambda t, ps, s: (
        f"<!doctype html><html><head><title>{html.escape(t)}</title></head><body class='magazine'>"
        f"<div class='banner'>{COOKIE} <button>Accept</button></div><nav class='primary'><ul>{NAV}</ul></nav>"
        f"<section class='hero'><h1>{html.escape(t)}</h1><p class='dek'>Our reporting, updated daily.</p></section>"
        f"<section class='content'><div class='article__body'>{_paras_html(ps, s)}</div>"
        f"<div class='tags'>Tags: news, analysis, features</div></section>"
        f"<section class='more'><h2>More from the magazine</h2><ul>{POPULAR}</ul></section>"
        f"<footer class='site-footer'><p>{LEGAL}</p></footer></body></html>"
    ),
]

UPDATE_LINE = "Update, March 3: This article has been updated to include a response from the company."


def cosmetic(paras: list[str]) -> list[str]:
    """Changes a reader would not call edits: quotes, dashes, spacing, line wraps."""
    out = []
    for p in paras:
        p = p.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"').replace("\u2014", " -- ")
        p = p.replace(". ", ".  ").replace(", ", ",\n")
        out.append(p)
    return out


def edit_words(paras: list[str], rng: random.Random, vocab: list[str], share: float = 0.01) -> list[str]:
    words = [p.split(" ") for p in paras]
    slots = [(i, j) for i, ws in enumerate(words) for j in range(len(ws))]
    for i, j in rng.sample(slots, max(1, round(len(slots) * share))):
        words[i][j] = rng.choice(vocab)
    return [" ".join(ws) for ws in words]


def drop_short_paragraph(paras: list[str]) -> list[str]:
    if len(paras) >= 3:
        inner = min(range(1, len(paras) - 1), key=lambda i: len(paras[i]))
        return paras[:inner] + paras[inner + 1 :]
    sentences = paras[-1].split(". ")
    return [*paras[:-1], ". ".join(sentences[:-1])] if len(sentences) > 1 else paras


def mash_up(left: str, right: str, left_part: str) -> str:
    """The first (or last) half-share of ``left`` and the last of ``right``, equal in dedup tokens.

    Halves are counted in the tokens shingles are made of (a CJK character is one): halves of
    whitespace words made "mash-ups" that were 90% one article when the other was short or CJK,
    which are excerpts of it, not mash-ups.
    """
    lt, rt = [m.start() for m in TOKEN_RE.finditer(left)], [m.start() for m in TOKEN_RE.finditer(right)]
    half = min(len(lt), len(rt)) // 2
    if half == 0:
        return left + " " + right
    head = left[: lt[half]] if left_part == "first" else left[lt[len(lt) - half] :]
    return head.rstrip() + " " + right[rt[len(rt) - half] :]


def build_set(texts: list[str], seed: int = 7) -> tuple[list[str], list[int], list[str]]:
    """HTML pages, their true cluster, their kind."""
    rng = random.Random(seed)
    vocab = sorted({w for t in texts for w in t.split() if w.isalpha()})
    pages, truth, kinds = [], [], []
    for a, text in enumerate(texts):
        paras = [p.strip() for p in text.split("\n") if p.strip()]
        title = " ".join(paras[0].split()[:8])
        variants = [
            ("original", paras, 0, 0),
            ("cosmetic", cosmetic(paras), 1, 1),
            ("edit1pct", edit_words(paras, rng, vocab), 2, 0),
            ("para_removed", drop_short_paragraph(paras), 3, 0),
            ("update_line", [*paras, UPDATE_LINE], (a % 2) * 2 + 1, 0),
        ]
        for kind, ps, template, style in variants:
            pages.append(TEMPLATES[template](title, ps, style))
            truth.append(a)
            kinds.append(kind)
    for a in range(0, len(texts) - 1, 2):
        mash = mash_up(texts[a], texts[a + 1], left_part="first")
        pages.append(TEMPLATES[a % 4](" ".join(texts[a].split()[:8]), [mash], 0))
        truth.append(len(texts) + a)
        kinds.append("mashup")
    return pages, truth, kinds


EXTRACTORS = ("pipeline", "trafilatura")


def extract_all(pages: list[str], extractor: str) -> tuple[list[str], str]:
    """Main text of each page, as the pipeline's extract stage or as plain trafilatura gives it."""
    if extractor == "pipeline":
        from flows.document import Document
        from flows.extract import ExtractConfig, extract_batch

        config = ExtractConfig()
        docs = [Document(doc_id=f"p{i}", source_uri=f"p{i}.html", text=p, kind="html") for i, p in enumerate(pages)]
        kept, _rejects = extract_batch(docs, config)
        by_id = {d.doc_id: d.text for d in kept}
        return [by_id.get(f"p{i}", "") for i in range(len(pages))], f"flows.extract.extract_batch ({config})"
    import trafilatura

    out = [trafilatura.extract(p, deduplicate=False, include_comments=False, include_tables=True) for p in pages]
    how = "trafilatura.extract(html, deduplicate=False, include_comments=False, include_tables=True)"
    return [o or "" for o in out], how


def built_texts(cache: Path | None, extractor: str) -> tuple[list[str], list[int], list[str], str]:
    gold = load_gold_texts()
    pages, truth, kinds = build_set(gold)
    cache_file = cache.with_suffix(f".{extractor}.json") if cache else None
    if cache_file and cache_file.exists():
        data = json.loads(cache_file.read_text())
        if data["n"] == len(pages):
            return data["texts"], truth, kinds, data["how"] + " (cached)"
    texts, how = extract_all(pages, extractor)
    if cache_file:
        cache_file.write_text(json.dumps({"n": len(pages), "texts": texts, "how": how}))
    return texts, truth, kinds, how


def bench_built(config: dedup.DedupConfig, cache: Path | None, extractor: str) -> None:
    start = time.perf_counter()
    texts, truth, kinds, how = built_texts(cache, extractor)
    n_art = len({t for t, k in zip(truth, kinds, strict=True) if k != "mashup"})
    print(
        f"\n## 3. Built near-duplicate set: {n_art} articles x 5 variants + {kinds.count('mashup')} mash-ups "
        f"= {len(texts)} pages, extracted with {how} in {time.perf_counter() - start:.0f} s; "
        f"{sum(not t for t in texts)} empty extractions"
    )
    clusters = clusters_of(texts, config)
    predicted, true_pairs = pair_set(clusters), pair_set(truth)
    p, r, f = prf(predicted, true_pairs)
    print(
        f"  pairwise (resolve, threshold {config.threshold}): precision {p:.4f}  recall {r:.4f}  F1 {f:.4f}  "
        f"({len(true_pairs)} true pairs, {len(predicted)} predicted)"
    )
    by_kind: dict[str, list[bool]] = defaultdict(list)
    orig = {t: i for i, (t, k) in enumerate(zip(truth, kinds, strict=True)) if k == "original"}
    for i, (t, k) in enumerate(zip(truth, kinds, strict=True)):
        if k not in ("original", "mashup"):
            by_kind[k].append(clusters[i] == clusters[orig[t]])
    print("  recall vs the original, by variant: " + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in by_kind.items()))
    mash_fp = sum(clusters.count(clusters[i]) > 1 for i, k in enumerate(kinds) if k == "mashup")
    print(f"  mash-ups wrongly clustered: {mash_fp} of {kinds.count('mashup')}")
    lsh_recall(texts, config)


def lsh_recall(texts: list[str], config: dedup.DedupConfig) -> None:
    sets = id_sets(texts, config)
    n = len(texts)
    exact = {(i, j) for i in range(n) for j in range(i + 1, n) if jaccard(sets[i], sets[j]) >= config.threshold}
    sigs = dedup.signatures(texts, config)
    left, right = dedup.candidate_pairs(dedup.band_keys(sigs, config), config.max_candidates_per_band)
    cands = set(zip(left.tolist(), right.tolist(), strict=True))
    est = {(i, j) for i, j in cands if dedup.estimated_jaccard(sigs[i], sigs[j]) >= config.threshold}
    got = len(exact & cands)
    print(
        f"  brute force: {len(exact)} pairs with exact Jaccard >= {config.threshold} (of {n * (n - 1) // 2}); "
        f"LSH candidate recall {got / max(len(exact), 1):.4f}; after MinHash verification "
        f"recall {len(exact & est) / max(len(exact), 1):.4f}, precision {len(exact & est) / max(len(est), 1):.4f}; "
        f"{len(cands)} candidate pairs checked"
    )


# -- 4. containment set --------------------------------------------------------------------------

CONTAINMENT_KINDS = ("article", "teaser", "feed", "quote", "mashup")
MIN_EXCERPT_WORDS = 50
TEASER_MORE = "Continue reading the full story on our website. Subscribe for unlimited access."


def _first_share(paras: list[str], share: float, whole_paragraphs: bool) -> list[str]:
    """The first ``share`` of the words: whole paragraphs (a teaser), or cut mid-paragraph (a feed)."""
    total = sum(len(p.split()) for p in paras)
    out, words = [], 0
    for p in paras:
        ws = p.split()
        if words + len(ws) > share * total:
            if not whole_paragraphs or not out:
                out.append(" ".join(ws[: max(1, round(share * total) - words)]))
            break
        out.append(p)
        words += len(ws)
    return out


def load_story_bodies(count: int) -> list[list[str]]:
    """Paragraphs of cleaneval gold texts (300+ words): the own text of the stories that quote articles."""
    with open(corpora_dir() / "cleaneval" / "gold.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    texts = [r["text"] for r in rows if not r.get("gold_empty") and len(r["text"].split()) >= 300]
    return [[p.strip() for p in t.split("\n") if p.strip()] for t in texts[:count]]


def build_containment_set(texts: list[str], seed: int = 11) -> tuple[list[str], list[bool], list[int], list[str]]:
    """Pages (HTML, or plain text for feeds), whether each is HTML, its true cluster, its kind.

    Containers: every article in template 0, so they are also same-template negatives of each other.
    Positives: a teaser page (first 30-55%, whole paragraphs, another template) and a plain-text feed
    (first 40-70%, cut mid-paragraph), each when at least ``MIN_EXCERPT_WORDS`` long. Negatives: a
    story (a cleaneval gold text) quoting the last two paragraphs of an article of 5+ paragraphs,
    and a mash-up of two articles' second halves, equal in tokens (``mash_up``; second halves, so
    that no teaser or feed is also contained in a mash-up).
    """
    rng = random.Random(seed)
    bodies = load_story_bodies(len(texts))
    pages, is_html, truth, kinds = [], [], [], []

    def add(page: str, html_page: bool, cluster: int, kind: str) -> None:
        pages.append(page)
        is_html.append(html_page)
        truth.append(cluster)
        kinds.append(kind)

    n = len(texts)
    for a, text in enumerate(texts):
        paras = [p.strip() for p in text.split("\n") if p.strip()]
        title = " ".join(paras[0].split()[:8])
        add(TEMPLATES[0](title, paras, 0), True, a, "article")
        teaser = _first_share(paras, rng.uniform(0.30, 0.55), whole_paragraphs=True)
        feed = _first_share(paras, rng.uniform(0.40, 0.70), whole_paragraphs=False)
        # Excerpts under MIN_EXCERPT_WORDS are left out: never flagged as contained by policy, and
        # their pages extract to little but chrome.
        if sum(len(p.split()) for p in teaser) >= MIN_EXCERPT_WORDS:
            add(TEMPLATES[1 + a % 3](title, [*teaser, TEASER_MORE], a % 2), True, a, "teaser")
        if sum(len(p.split()) for p in feed) >= MIN_EXCERPT_WORDS:
            add("\n\n".join(feed), False, a, "feed")
        if len(paras) >= 5:  # the quoted paragraphs are the last two: in no teaser or feed
            body = bodies[a % len(bodies)]
            middle = len(body) // 2
            story = [*body[:middle], *(f"As one report put it: {p}" for p in paras[-2:]), *body[middle:]]
            add(TEMPLATES[2](" ".join(body[0].split()[:8]), story, 0), True, n + a, "quote")
        add(TEMPLATES[3](title, [mash_up(text, texts[(a + 1) % n], left_part="last")], 0), True, 2 * n + a, "mashup")
    return pages, is_html, truth, kinds


def containment_texts(cache: Path | None, extractor: str) -> tuple[list[str], list[int], list[str], str]:
    pages, is_html, truth, kinds = build_containment_set(load_gold_texts())
    cache_file = cache.with_suffix(f".containment.{extractor}.json") if cache else None
    if cache_file and cache_file.exists():
        data = json.loads(cache_file.read_text())
        if data["n"] == len(pages):
            return data["texts"], truth, kinds, data["how"] + " (cached)"
    html_rows = [i for i, h in enumerate(is_html) if h]
    extracted, how = extract_all([pages[i] for i in html_rows], extractor)
    texts = list(pages)
    for i, t in zip(html_rows, extracted, strict=True):
        texts[i] = t
    if cache_file:
        cache_file.write_text(json.dumps({"n": len(pages), "texts": texts, "how": how}))
    return texts, truth, kinds, how


def bench_containment(config: dedup.DedupConfig, cache: Path | None, extractor: str) -> None:
    texts, truth, kinds, how = containment_texts(cache, extractor)
    sizes = dedup.fingerprints(texts, config)[1]
    # Policy: a text under containment_min_shingles is never flagged as contained, so it is no positive.
    short = {i for i, k in enumerate(kinds) if k in ("teaser", "feed") and sizes[i] < config.containment_min_shingles}
    labels = [(-1 - i) if i in short else t for i, t in enumerate(truth)]
    counts = ", ".join(f"{kinds.count(k)} {k}s" for k in CONTAINMENT_KINDS)
    print(f"\n## 4. Containment set: {len(texts)} texts ({counts}),"
          f" HTML extracted with {how}; {len(short)} teasers/feeds under {config.containment_min_shingles} shingles "
          "count as negatives (never flagged as contained)")
    decisions = decide(texts, config)
    clusters = decisions.dup_cluster
    p, r, f = prf(pair_set(clusters), pair_set(labels))
    print(f"  pairwise: precision {p:.4f}  recall {r:.4f}  F1 {f:.4f}  "
          f"({len(pair_set(labels))} true pairs, {len(pair_set(clusters))} predicted)")
    article_of = {t: i for i, (t, k) in enumerate(zip(truth, kinds, strict=True)) if k == "article"}
    for kind in ("teaser", "feed"):
        rows = [i for i, k in enumerate(kinds) if k == kind and i not in short]
        hit = [clusters[i] == clusters[article_of[truth[i]]] for i in rows]
        kinds_seen = {str(decisions.dup_kind[i]) for i in rows}
        print(f"  {kind}s flagged against their article: {sum(hit)} of {len(rows)} ({np.mean(hit):.3f}); "
              f"dup_kind {sorted(kinds_seen)}")
    for kind in ("article", "quote", "mashup"):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        wrong = [i for i in rows if any(clusters[j] == clusters[i] and labels[j] != labels[i]
                                        for j in range(len(texts)))]
        print(f"  {kind}s in a cluster with another story: {len(wrong)} of {len(rows)}")
    containment_recall(texts, config)


def containment_recall(texts: list[str], config: dedup.DedupConfig) -> None:
    """LSH candidate recall against brute-force exact containment, and the estimators' error."""
    sets = id_sets(texts, config)
    sigs, sizes = dedup.fingerprints(texts, config)
    n = len(texts)
    exact = {}
    for i in range(n):
        if len(sets[i]) < config.containment_min_shingles:
            continue
        for j in range(n):
            if len(sets[j]) > len(sets[i]):
                c = len(sets[i] & sets[j]) / len(sets[i])
                if c >= config.containment_threshold:
                    exact[(i, j)] = c
    left, right = dedup.candidate_pairs(dedup.band_keys(sigs, config), config.max_candidates_per_band)
    cands = set(zip(left.tolist(), right.tolist(), strict=True))
    got = [p for p in exact if (min(p), max(p)) in cands]
    pairs = np.array(list(exact), dtype=np.int64).reshape(-1, 2)
    ok, est = dedup.contained_in(sigs[pairs[:, 0]], sigs[pairs[:, 1]], sizes[pairs[:, 0]], sizes[pairs[:, 1]], config)
    truth = np.array(list(exact.values()))
    jac = dedup.estimated_jaccard(sigs[pairs[:, 0]], sigs[pairs[:, 1]])
    a, b = sizes[pairs[:, 0]].astype(float), sizes[pairs[:, 1]].astype(float)
    by_size = np.minimum(jac * (a + b) / ((1 + jac) * a), 1.0)
    print(f"  brute force: {len(exact)} ordered pairs with exact containment >= {config.containment_threshold} "
          f"(smaller in larger, >= {config.containment_min_shingles} shingles); LSH candidate recall "
          f"{len(got) / max(len(exact), 1):.4f}; passing the Wilson-bound check: {ok.mean() if len(ok) else 1:.4f}")
    for name, values in (("hits/samples (used)", est), ("J and set sizes", by_size)):
        err = values - truth
        print(f"  containment estimator {name:20s}: mean error {err.mean():+.3f}, RMSE {np.sqrt((err**2).mean()):.3f},"
              f" 5th-95th pct error {np.percentile(err, 5):+.3f} .. {np.percentile(err, 95):+.3f}")


# -- sweep -------------------------------------------------------------------------------------


def s_curve(b: int, r: int, s: float) -> float:
    return float(1 - (1 - s**r) ** b)


def bench_containment_sweep(cache: Path | None, extractor: str) -> None:
    """The containment threshold and Wilson z, through the real resolve(), on the three sets."""
    ctexts, ctruth, ckinds, _ = containment_texts(cache, extractor)
    btexts, btruth, _, _ = built_texts(cache, extractor)
    ids, cl_texts, pairs = load_clough()
    cut = [(a, s) for a, s, c in pairs if c == "cut" and ids[a] not in CLOUGH_CUT_NOT_FROM_SOURCE]
    non = [(a, s) for a, s, c in pairs if c == "non"]
    print(f"\n## Containment sweep ({extractor}): threshold x Wilson z")
    print("  thr    z      containment P  R       built F1   clough cut (of 11)  non flagged")
    for threshold in (0.5, 0.6, 0.7):
        for z in (1.645, 2.33, 3.0):
            cfg = dedup.DedupConfig(containment_threshold=threshold, containment_z=z)
            sizes = dedup.fingerprints(ctexts, cfg)[1]
            labels = [(-1 - i) if k in ("teaser", "feed") and sizes[i] < cfg.containment_min_shingles else t
                      for i, (t, k) in enumerate(zip(ctruth, ckinds, strict=True))]
            cp, cr, _ = prf(pair_set(clusters_of(ctexts, cfg)), pair_set(labels))
            bf = prf(pair_set(clusters_of(btexts, cfg)), pair_set(btruth))[2]
            kc = clusters_of(cl_texts, cfg, ids)
            cut_hits = sum(kc[a] == kc[s] for a, s in cut)
            non_hits = sum(kc[a] == kc[s] for a, s in non)
            print(f"  {threshold:.1f}  {z:5.3f}   {cp:.4f}        {cr:.4f}   {bf:.4f}     {cut_hits:2d}"
                  f"                  {non_hits}")


def bench_sweep(cache: Path | None, extractor: str) -> None:
    texts, truth, _kinds, _how = built_texts(cache, extractor)
    _, ctexts, cpairs = load_clough()
    true_pairs = pair_set(truth)
    n = len(texts)
    print(f"\n## Sweep: exact Jaccard (no MinHash error), pair-level on the built set ({extractor}), clough pairs")
    print("  shingles     thr   built P   built R   built F1 | clough cut  light  heavy  non-FP | max neg J  min pos J")
    for kind, size in (("word", 1), ("word", 2), ("word", 3), ("word", 4), ("word", 5), ("char", 5), ("char", 9)):
        hash_function = "token_xxh32" if kind == "word" else "xxh32"
        cfg = dedup.DedupConfig.model_validate(
            {"shingle_kind": kind, "shingle_size": size, "hash_function": hash_function}
        )
        sets = id_sets(texts, cfg)
        js = {(i, j): jaccard(sets[i], sets[j]) for i in range(n) for j in range(i + 1, n)}
        csets = id_sets(ctexts, cfg)
        cj = [(jaccard(csets[a], csets[s]), c) for a, s, c in cpairs]
        neg = max(v for k, v in js.items() if k not in true_pairs)
        pos = min(js[k] for k in true_pairs)
        for thr in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            pred = {k for k, v in js.items() if v >= thr}
            p, r, f = prf(pred, true_pairs)
            rec = {c: np.mean([v >= thr for v, cc in cj if cc == c]) for c in ("cut", "light", "heavy", "non")}
            print(
                f"  {kind} {size:2d}   {thr:4.2f}   {p:.4f}    {r:.4f}    {f:.4f}  | {rec['cut']:.2f}     "
                f"{rec['light']:.2f}   {rec['heavy']:.2f}   {rec['non']:.2f}   | {neg:.3f}      {pos:.3f}"
            )
    bench_containment_sweep(cache, extractor)
    print("\n  LSH S-curve P(candidate | Jaccard s) for num_perm 128:")
    print("  bands x rows   s=0.3   s=0.5   s=0.6   s=0.7   s=0.8   band-key bytes/doc")
    for b, r in ((16, 8), (20, 6), (25, 5), (32, 4), (42, 3), (64, 2)):
        print(
            f"  {b:3d} x {r}     "
            + "  ".join(f"{s_curve(b, r, s):.4f}" for s in (0.3, 0.5, 0.6, 0.7, 0.8))
            + f"   {b * 12}"
        )


# -- 4. index size and memory ---------------------------------------------------------------------


def bench_index(config: dedup.DedupConfig, lake_docs: int, batch_docs: int, segments: int) -> None:
    print(f"\n## 5. Index: {lake_docs:,} synthetic documents in {segments} segments, a batch of {batch_docs:,}")
    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as tmp:
        for step in ("build", "query-empty", "query"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.dedup", "--child", step, tmp, str(lake_docs), str(batch_docs),
                 str(segments)],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            print(out.rstrip())


def _random_sigs(rng: np.random.Generator, n: int, num_perm: int) -> np.ndarray:
    return rng.integers(0, 2**32, size=(n, num_perm), dtype=np.uint32)


def child(step: str, tmp: str, lake_docs: int, batch_docs: int, segments: int) -> None:
    config = dedup.DedupConfig()
    index_dir = Path(tmp) / "_index"
    start = time.perf_counter()
    if step == "build":
        per = -(-lake_docs // segments)
        for s in range(segments):
            n = min(per, lake_docs - s * per)
            rng = np.random.default_rng(s)
            sigs = _random_sigs(rng, n, config.num_perm)
            ids = [f"{s:02d}{i:014x}{'0' * 48}" for i in range(n)]  # 64-char ids, like sha256 hex
            sizes = rng.integers(100, 2000, size=n, dtype=np.uint32)
            hashes = [f"{i:032x}" for i in range(n)]
            batch = dedup.DedupBatch(ids, hashes, sigs, np.zeros(n), np.zeros(n, np.int64), sizes)
            # Random signatures are all unique: no need to resolve() a million rows here.
            decisions = dedup.DedupDecisions(list(ids), np.zeros(n, bool), np.ones(n), [None] * n, np.ones(n))
            staging = Path(tmp) / "staging" / f"run-{s:04d}"
            before = peak_rss_mb()
            dedup.LakeIndex(index_dir, config, []).write_segment(staging, f"run-{s:04d}", batch, decisions)
            dedup.publish_segment(index_dir, staging, f"run-{s:04d}")
            after = peak_rss_mb()
            print(
                f"  write_segment of {n:,} entries: peak RSS {after:,.0f} MB "
                f"(the batch itself: {sigs.nbytes / 1e6:,.0f} MB of signatures; peak before: {before:,.0f} MB)"
            )
        size = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())
        print(
            f"  built in {time.perf_counter() - start:.0f} s: {size / 1e6:.0f} MB on disk = "
            f"{size / lake_docs:.0f} bytes/doc "
            f"(signatures {4 * config.num_perm}, band keys+refs {16 * config.bands}, set size 4, content hash 16, "
            "decisions 10, id keys 8, doc ids and clusters the rest)"
        )
        return
    index = dedup.LakeIndex.open(index_dir, config) if step == "query" else dedup.LakeIndex(index_dir, config, [])
    batch = (
        _query_batch(index_dir, config, batch_docs, segments)
        if step == "query"
        else _query_batch(None, config, batch_docs, segments)
    )
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    decisions = dedup.resolve(batch, index, config)
    _wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss_mb = peak_rss_mb()
    label = f"against the {len(index):,}-doc index" if step == "query" else "against an empty index (baseline)"
    print(
        f"  resolve {len(batch):,} docs {label}: {cpu:.2f} s CPU ({len(batch) / cpu:,.0f} docs/s), "
        f"{int(decisions.is_duplicate.sum()):,} duplicates found, peak RSS {rss_mb:,.0f} MB"
    )


def _query_batch(index_dir: Path | None, config: dedup.DedupConfig, n: int, segments: int) -> dedup.DedupBatch:
    """Half near-copies of lake documents (10% of values changed, est. Jaccard ~0.9), half new."""
    rng = np.random.default_rng(12345)
    sigs = _random_sigs(rng, n, config.num_perm)
    if index_dir is not None:
        index = dedup.LakeIndex.open(index_dir, config)
        half = n // 2
        seg = max(index.segments, key=lambda s: s.count)
        rows = np.sort(rng.choice(seg.count, size=min(half, seg.count), replace=False))
        half = len(rows)
        copies = seg.read_signatures(rows).copy()
        mask = rng.random(copies.shape) < 0.1
        copies[mask] = sigs[:half][mask]
        sigs[:half] = copies
    ids = [f"q{i:063x}" for i in range(n)]
    sizes = rng.integers(100, 2000, size=n, dtype=np.uint32)
    hashes = [f"{i:032x}" for i in range(n)]
    return dedup.DedupBatch(ids, hashes, sigs, np.full(n, 0.5), np.full(n, 1000, np.int64), sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true", help="also print the parameter sweep")
    parser.add_argument("--lake-docs", type=int, default=1_000_000)
    parser.add_argument("--batch-docs", type=int, default=20_000)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=4, help="throughput corpus = gold texts x repeat")
    parser.add_argument("--cache", type=Path, default=None, help="cache extracted texts of the built set here")
    parser.add_argument("--skip-built", action="store_true")
    parser.add_argument(
        "--extractor",
        nargs="+",
        choices=EXTRACTORS,
        default=list(EXTRACTORS),
        help="which extraction the built set goes through: the pipeline's extract stage, plain trafilatura, or both",
    )
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, tmp, lake, batch, segs = args.child
        child(step, tmp, int(lake), int(batch), int(segs))
        return
    config = dedup.DedupConfig()
    print(f"# dedup bench; DedupConfig: {config.model_dump()}")
    bench_throughput(config, args.repeat)
    bench_clough(config)
    if not args.skip_built:
        for extractor in args.extractor:
            bench_built(config, args.cache, extractor)
            bench_containment(config, args.cache, extractor)
    if args.sweep:
        for extractor in args.extractor:
            bench_sweep(args.cache, extractor)
    if not args.skip_index:
        bench_index(config, args.lake_docs, args.batch_docs, args.segments)


if __name__ == "__main__":
    main()
