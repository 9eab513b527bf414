"""The labelled quality dev set, built from the dev corpora: what ``tools/train_quality.py`` fits the shipped
model on and ``bench.quality`` measures it with.

Good = gold article texts (scrapinghub_aeb, mozilla_readability, cleaneval, cleanportaleval; >= 50 words;
Readability's lorem-ipsum test fixtures are junk, not articles) plus trafilatura_eval pages whose
trafilatura extract contains every ``with`` snippet and no ``without`` snippet (multilingual coverage).
Junk = the kinds a crawler meets: navigation link lists and footers harvested from the same HTML pages,
trafilatura_eval's human-labelled ``without`` boilerplate, cookie/legal banners, keyword spam, one sentence
repeated, a passage repeated, number tables, product listings, logs, base64/hex blobs, fragments too short
to be a document, shuffled word salad and lorem-ipsum placeholders.

Every example carries the source document it came from (``group``); the train/test split is by group, so a
page's article, its navigation and its word salad all land on the same side. Everything random is seeded,
so ``python -m tools.train_quality`` rebuilds the same model. The built set is cached (corpora parsing and
trafilatura extraction take a minute or two); delete the cache or pass ``--rebuild`` to redo it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.support.paths import cache_dir, corpora_dir
from flows.language import detect_language
from flows.quality import quality_signals

SEED = 20261123
TEST_PERCENT = 30
DATASET_VERSION = 7  # 7: languages and scores from fastText lid.176 (was py3langid)
MIN_GOOD_WORDS = 50
GOLD_SETS = ("scrapinghub_aeb", "mozilla_readability", "cleaneval", "cleanportaleval")
HTML_SETS = ("scrapinghub_aeb", "cleaneval", "trafilatura_eval")
# Junk kinds the model is trained against; good examples have kind "gold".
JUNK_KINDS = (
    "navigation",
    "footer",
    "boilerplate_snippets",
    "cookie_legal",
    "keyword_spam",
    "repeated_sentence",
    "repeated_passage",
    "number_table",
    "product_listing",
    "log",
    "encoded_blob",
    "short_fragment",
    "word_salad",
    "lorem_ipsum",
)
# Junk harvested from real pages: what a crawler meets most (the fit weighs it more than each synthetic kind).
HARVESTED_KINDS = ("navigation", "footer", "boilerplate_snippets")


def cache_path() -> Path:
    """Where the built dev set is cached (its name holds what it depends on: the version and the seed)."""
    return cache_dir() / f"quality_devset_v{DATASET_VERSION}_{SEED}.json"


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text of the dev set."""

    text: str
    label: int  # 1 = good article, 0 = junk
    kind: str  # "gold" or one of JUNK_KINDS
    group: str  # source document: the unit of the train/test split
    lang: str | None
    lang_score: float


def is_test(group: str) -> bool:
    """Stable, seeded split by source document."""
    digest = hashlib.sha256(f"{SEED}:{group}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < TEST_PERCENT


def _rng(*keys: str) -> random.Random:
    return random.Random(hashlib.sha256(":".join((str(SEED), *keys)).encode()).hexdigest())


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _read_html(corpus: str, rel: str) -> bytes:
    path = corpora_dir() / corpus / rel
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _paragraphs(lines: list[str], rng: random.Random) -> str:
    """Join blocks the way documents arrive: mostly blank-line paragraphs, sometimes single lines."""
    sep = "\n\n" if rng.random() < 0.7 else "\n"
    return sep.join(line.strip() for line in lines if line.strip())


def _word_count(text: str) -> int:
    return int(quality_signals(text, None, None)["q_word_count"])


# ------------------------------------------------------------------------------------------ good texts


def gold_articles() -> Iterator[tuple[str, str, str]]:
    """(group, corpus, text) for every gold article text with enough words; lorem fixtures excluded."""
    for corpus in GOLD_SETS:
        for row in _read_jsonl(corpora_dir() / corpus / "gold.jsonl"):
            text = str(row.get("text") or "")
            if "lorem ipsum" in text.lower() or _word_count(text) < MIN_GOOD_WORDS:
                continue
            group = f"{corpus}:{row['id']}"
            yield group, corpus, _paragraphs(text.split("\n"), _rng("fmt", group))


def lorem_fixtures() -> Iterator[tuple[str, str]]:
    """Readability's placeholder test pages: lorem ipsum, the C4 'drop the document' marker."""
    for row in _read_jsonl(corpora_dir() / "mozilla_readability" / "gold.jsonl"):
        text = str(row.get("text") or "")
        if "lorem ipsum" in text.lower():
            group = f"mozilla_readability:{row['id']}"
            yield group, _paragraphs(text.split("\n"), _rng("fmt", group))


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def trafilatura_extracts() -> Iterator[tuple[str, str, list[str]]]:
    """(group, extracted text, without-snippets) for trafilatura_eval pages; extract is '' on failure."""
    import trafilatura  # a pipeline dependency; imported here so the scorer never needs it

    for row in _read_jsonl(corpora_dir() / "trafilatura_eval" / "gold.jsonl"):
        group = f"trafilatura_eval:{row['id']}"
        html = _read_html("trafilatura_eval", str(row["html_path"]))
        text = trafilatura.extract(html, include_comments=False, include_tables=True) or ""
        squashed = _squash(text)
        with_ok = all(_squash(str(s)) in squashed for s in row.get("with", []))
        without = [str(s) for s in row.get("without", [])]
        clean = with_ok and not any(_squash(s) in squashed for s in without)
        yield group, text if clean else "", without


# ---------------------------------------------------------------------------- junk from HTML pages


def _page_lines(html: bytes) -> tuple[list[str], list[str]]:
    """Anchor texts (navigation) and footer lines of one page."""
    import lxml.html

    try:
        tree = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return [], []
    anchors = [_squash(a.text_content()) for a in tree.iter("a")]
    footer_nodes = tree.xpath(
        "//footer | //*[contains(@id, 'footer') or contains(@class, 'footer') or contains(@id, 'copyright')"
        " or contains(@class, 'copyright')]"
    )
    footer: list[str] = []
    for node in footer_nodes[:3]:
        footer.extend(_squash(t) for t in node.itertext())
    return [a for a in anchors if a], [f for f in footer if f]


def html_junk() -> Iterator[tuple[str, str, str]]:
    """Navigation and footer junk from every HTML page of the HTML sets."""
    for corpus in HTML_SETS:
        for row in _read_jsonl(corpora_dir() / corpus / "gold.jsonl"):
            group = f"{corpus}:{row['id']}"
            anchors, footer = _page_lines(_read_html(corpus, str(row["html_path"])))
            rng = _rng("nav", group)
            if len(anchors) >= 8:
                start = rng.randrange(max(1, len(anchors) - 40))
                yield group, "navigation", _paragraphs(anchors[start : start + rng.randint(12, 80)], rng)
            if _word_count(" ".join(footer)) >= 8:
                yield group, "footer", _paragraphs(footer[:60], rng)


# --------------------------------------------------------------------------------- synthetic junk

_COOKIE = {
    "en": [
        "We use cookies to improve your experience on our website.",
        "By continuing to browse the site you are agreeing to our use of cookies.",
        "Accept all cookies",
        "Manage preferences",
        "Privacy Policy",
        "Terms of Use",
        "Cookie Settings",
        "This website uses cookies and similar technologies to analyse traffic and personalise content.",
        "Reject all",
        "Learn more",
        "© 2024 All rights reserved.",
        "Imprint",
        "Do not sell my personal information",
    ],
    "de": [
        "Wir verwenden Cookies, um Ihnen das beste Nutzererlebnis zu bieten.",
        "Mit der Nutzung dieser Website erklären Sie sich mit der Verwendung von Cookies einverstanden.",
        "Alle akzeptieren",
        "Einstellungen",
        "Datenschutzerklärung",
        "Impressum",
        "AGB",
        "Cookie-Einstellungen",
        "Ablehnen",
        "Mehr erfahren",
        "© 2024 Alle Rechte vorbehalten.",
    ],
    "fr": [
        "Nous utilisons des cookies pour améliorer votre expérience sur notre site.",
        "En poursuivant votre navigation, vous acceptez l'utilisation de cookies.",
        "Tout accepter",
        "Paramétrer les cookies",
        "Politique de confidentialité",
        "Mentions légales",
        "Conditions générales d'utilisation",
        "Refuser",
        "En savoir plus",
        "© 2024 Tous droits réservés.",
    ],
    "es": [
        "Utilizamos cookies propias y de terceros para mejorar nuestros servicios.",
        "Si continúa navegando, consideramos que acepta su uso.",
        "Aceptar todas",
        "Configurar cookies",
        "Política de privacidad",
        "Aviso legal",
        "Rechazar",
        "Más información",
        "© 2024 Todos los derechos reservados.",
    ],
}
_LOG_LEVELS = ("INFO", "DEBUG", "WARN", "ERROR")
_LOG_MESSAGES = (
    "GET /api/v1/items?id={n} 200 {ms}ms",
    "connection from 10.0.{a}.{b}:{port} closed",
    "worker-{a} heartbeat ok (queue={n})",
    "retrying request {n} after timeout ({ms} ms)",
    "cache miss key=user:{n}:profile",
    "POST /login 302 {ms}ms uid={n}",
    "java.lang.NullPointerException at com.example.Service.run(Service.java:{n})",
)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", _squash(text)) if len(s.split()) >= 6]


def _content_words(text: str) -> list[str]:
    return list(re.findall(r"[^\W\d_]{4,}", text))


def make_keyword_spam(text: str, rng: random.Random) -> str:
    words = sorted(set(_content_words(text)))
    keys = rng.sample(words, min(len(words), rng.randint(3, 8)))
    mods = ("best", "cheap", "buy", "online", "free", "top", "2024", "sale", "discount", "review")
    lines = []
    for _ in range(rng.randint(8, 40)):
        parts = [rng.choice(keys) if rng.random() < 0.6 else rng.choice(mods) for _ in range(rng.randint(2, 9))]
        lines.append(rng.choice((" ", ", ", " | ")).join(parts))
    return _paragraphs(lines, rng) if rng.random() < 0.5 else " ".join(lines)


def make_repeated_sentence(text: str, rng: random.Random) -> str:
    sentences = _sentences(text) or [_squash(text)[:200]]
    chosen = rng.sample(sentences, min(len(sentences), rng.choice((1, 1, 2, 3))))
    reps = [rng.choice(chosen) for _ in range(rng.randint(8, 60))]
    return _paragraphs(reps, rng) if rng.random() < 0.5 else " ".join(reps)


def make_repeated_passage(text: str, rng: random.Random) -> str:
    """A few paragraphs of the article, the whole block repeated (spam pages, broken pagination)."""
    paragraphs = [p for p in text.split("\n") if p.strip()]
    start = rng.randrange(len(paragraphs))
    block = paragraphs[start : start + rng.randint(1, 6)]
    return _paragraphs(block * rng.randint(4, 30), rng)


def make_number_table(text: str, rng: random.Random) -> str:
    words = _content_words(text) or ["Total"]
    cols = rng.randint(3, 8)
    header = " ".join(rng.choice(words).capitalize() for _ in range(cols))
    fmt = rng.choice(("{:.2f}", "{:d}", "{:,}", "{:.1f}%"))
    rows = [header]
    for _ in range(rng.randint(8, 60)):
        vals = [rng.random() * 1000 if "f" in fmt else rng.randint(0, 99999) for _ in range(cols)]
        label = [rng.choice(words)] if rng.random() < 0.4 else []
        rows.append(rng.choice(("\t", " ", " | ")).join(label + [fmt.format(v) for v in vals]))
    return "\n".join(rows)


def make_product_listing(text: str, rng: random.Random) -> str:
    words = _content_words(text) or ["Item"]
    currency = rng.choice(("$", "€", "£", ""))
    lines = []
    for _ in range(rng.randint(6, 40)):
        name = " ".join(rng.choice(words).capitalize() for _ in range(rng.randint(2, 5)))
        price = f"{currency}{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
        extras = rng.sample(
            [
                "Add to cart",
                "In stock",
                f"({rng.randint(1, 999)} reviews)",
                "★★★★☆",
                "Free shipping",
                f"SKU {rng.randint(10000, 99999)}",
                "Sale!",
                "Compare",
            ],
            rng.randint(0, 3),
        )
        lines.append(rng.choice((" - ", " | ", "\n")).join([name, price, *extras]))
    return _paragraphs(lines, rng)


def make_log(text: str, rng: random.Random) -> str:
    del text
    lines = []
    for i in range(rng.randint(10, 80)):
        msg = rng.choice(_LOG_MESSAGES).format(
            n=rng.randint(1, 99999),
            ms=rng.randint(1, 900),
            a=rng.randint(0, 255),
            b=rng.randint(0, 255),
            port=rng.randint(1024, 65535),
        )
        stamp = f"2024-0{rng.randint(1, 9)}-{rng.randint(10, 28)} {rng.randint(10, 23)}:{i % 60:02d}"
        thread = rng.choice(("main", "http", "db"))
        level = rng.choice(_LOG_LEVELS)
        lines.append(f"{stamp}:{rng.randint(10, 59)},{rng.randint(100, 999)} {level} [{thread}] {msg}")
    return "\n".join(lines)


def make_encoded_blob(text: str, rng: random.Random) -> str:
    raw = (text.encode() if rng.random() < 0.5 else rng.randbytes(rng.randint(300, 4000)))[: rng.randint(300, 4000)]
    if rng.random() < 0.6:
        encoded = base64.b64encode(raw).decode()
        width = rng.choice((64, 76, 0))
    else:
        encoded = raw.hex()
        width = rng.choice((32, 64, 0))
    if not width:
        return encoded
    return "\n".join(encoded[i : i + width] for i in range(0, len(encoded), width))


def make_short_fragment(text: str, rng: random.Random) -> str:
    words = _squash(text).split()
    start = rng.randrange(max(1, len(words) - 40))
    return " ".join(words[start : start + rng.randint(3, 35)])


def make_word_salad(text: str, rng: random.Random) -> str:
    """The article's own words, shuffled, poured back into its line structure."""
    lines = [line.split() for line in text.split("\n") if line.strip()]
    words = [w for line in lines for w in line]
    rng.shuffle(words)
    out, pos = [], 0
    for line in lines:
        out.append(" ".join(words[pos : pos + len(line)]))
        pos += len(line)
    return _paragraphs(out, rng)


def make_cookie_legal(text: str, rng: random.Random, lang: str | None) -> str:
    del text
    phrases = _COOKIE.get(lang or "en", _COOKIE["en"])
    lines = [rng.choice(phrases) for _ in range(rng.randint(3, 14))]
    return _paragraphs(list(dict.fromkeys(lines)), rng)


Maker = Callable[[str, random.Random], str]
_MAKERS: dict[str, Maker] = {
    "keyword_spam": make_keyword_spam,
    "repeated_sentence": make_repeated_sentence,
    "repeated_passage": make_repeated_passage,
    "number_table": make_number_table,
    "product_listing": make_product_listing,
    "log": make_log,
    "encoded_blob": make_encoded_blob,
    "short_fragment": make_short_fragment,
    "word_salad": make_word_salad,
}


def synthetic_junk(group: str, text: str, lang: str | None) -> Iterator[tuple[str, str]]:
    """About two synthetic junk documents per good article, kinds drawn at random (seeded)."""
    rng = _rng("junk", group)
    kinds = [*_MAKERS, "cookie_legal"]
    for kind in rng.sample(kinds, 3):
        if kind == "cookie_legal":
            yield kind, make_cookie_legal(text, rng, lang)
        else:
            yield kind, _MAKERS[kind](text, rng)


def boilerplate_docs(withouts: list[tuple[str, list[str]]]) -> Iterator[tuple[str, str]]:
    """trafilatura_eval 'without' snippets (human-labelled boilerplate), 1-4 pages' worth per document.

    Pages are chunked within their own split side so that no test document shares a page with training.
    """
    for side in (False, True):
        pages = [(g, s) for g, s in withouts if is_test(g) == side and s]
        rng = _rng("without", str(side))
        i = 0
        while i < len(pages):
            take = rng.randint(1, 4)
            chunk = pages[i : i + take]
            i += take
            yield chunk[0][0], _paragraphs([s for _, snippets in chunk for s in snippets], rng)


# ----------------------------------------------------------------------------------------- dataset


def _example(text: str, label: int, kind: str, group: str) -> Example:
    lang, score = detect_language(text)
    return Example(text, label, kind, group, lang, score)


def build_dataset() -> list[Example]:
    """Every labelled example, in a deterministic order."""
    examples: list[Example] = []
    good: list[tuple[str, str]] = [(g, t) for g, _, t in gold_articles()]
    withouts: list[tuple[str, list[str]]] = []
    for group, text, without in trafilatura_extracts():
        withouts.append((group, without))
        if text and _word_count(text) >= MIN_GOOD_WORDS:
            good.append((group, _paragraphs(text.split("\n"), _rng("fmt", group))))
    for group, text in good:
        example = _example(text, 1, "gold", group)
        examples.append(example)
        examples.extend(_example(t, 0, k, group) for k, t in synthetic_junk(group, text, example.lang))
    for group, kind, text in html_junk():
        examples.append(_example(text, 0, kind, group))
    examples.extend(_example(t, 0, "boilerplate_snippets", g) for g, t in boilerplate_docs(withouts))
    examples.extend(_example(t, 0, "lorem_ipsum", g) for g, t in lorem_fixtures())
    return [e for e in examples if e.text.strip()]


def load_dataset(rebuild: bool = False) -> list[Example]:
    """The dev set, from the cache when present (it only depends on the corpora and this file's seed)."""
    path = cache_path()
    if path.exists() and not rebuild:
        return [Example(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
    examples = build_dataset()
    assert {e.kind for e in examples} <= {"gold", *JUNK_KINDS}, "a junk kind is missing from JUNK_KINDS"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(e) for e in examples], ensure_ascii=False), encoding="utf-8")
    return examples
