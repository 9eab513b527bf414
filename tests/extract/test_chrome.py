"""Plain-text chrome removal: the seeds lose every chrome line and no article line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.extract import strip_chrome

# The chrome lines of each seed, judged by a person. Everything else in the seed is article text.
SEED_CHROME = {
    "000_23aa8dcb5aa22d11.txt": [
        "OpenAI's Sam Altman praises DeepSeek's AI model for its impressive efficiency. Read more...",
        "Channlstv",
        "Fintterreporter",
        "285 Blog posts",
        "Comments",
    ],
    "001_6e6ba751b9dd1bff.txt": [],
    "002_fe670c7340db32a4.txt": ["---", "Read More USA Works News"],
    "003_8f879b3927a214c6.txt": ["Deepseek : Deepseek's AI Breakthrough Challenges OpenAI and Industry Norms"],
    "004_16f9ef7aa1e1d51a.txt": [
        "avatar image",
        "Advertisement",
        "Reading Time:3 minutes",
        "Why you can trust SCMP",
        "18",
        "DeepSeek has been making waves in the global AI community. Photo: Reuters",
        "Coco Fengin Guangdong",
        "OpenAI CEO Sam Altman. Photo: AFP",
        "Coco Feng",
        "Coco Feng joined the Post in 2019, covering the technology and internet sector from the Greater Bay Area."
        " Previously, she worked at the Post's Beijing bureau.",
    ],
}

PARAGRAPH = (
    "The committee met on Tuesday to discuss the new budget, and its members agreed that the "
    "proposal needed more work before it could be put to a vote next month."
)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(SEED_CHROME))
def test_seed_loses_its_chrome_and_keeps_every_article_line(seeds_dir: Path, name: str) -> None:
    text = (seeds_dir / name).read_text(encoding="utf-8")
    chrome = set(SEED_CHROME[name])
    expected = [line for line in _lines(text) if line not in chrome]
    assert _lines(strip_chrome(text)) == expected


def test_headings_between_paragraphs_stay() -> None:
    text = f"Budget talks stall\n\n{PARAGRAPH}\n\nWhat comes next\n\n{PARAGRAPH}"
    assert "What comes next" in strip_chrome(text)


def test_a_short_closing_sentence_stays_but_trailing_furniture_goes() -> None:
    text = f"{PARAGRAPH}\n\nThe vote is expected in May.\n\nShare this article\n\n12 Comments\n\nTags: budget, politics"
    out = _lines(strip_chrome(text))
    assert out == [PARAGRAPH, "The vote is expected in May."]


def test_text_in_scripts_without_spaces_is_article_text() -> None:
    text = "科技新闻\n\n" + "研究人员发现，这种新材料在高温下依然保持稳定，因此可以用于制造更安全的电池。" * 2
    assert strip_chrome(text) == text


def test_a_page_without_prose_keeps_its_lines() -> None:
    # Recipes, lists, tables: nothing to anchor on, so only lines that are chrome anywhere go.
    text = "Ingredients\n\n- 2 eggs\n\n- 1 cup of flour\n\n---\n\nAdvertisement"
    assert _lines(strip_chrome(text)) == ["Ingredients", "- 2 eggs", "- 1 cup of flour"]


def test_paragraph_breaks_survive() -> None:
    out = strip_chrome(f"Advertisement\n\n{PARAGRAPH}\n\n{PARAGRAPH}")
    assert out == f"{PARAGRAPH}\n\n{PARAGRAPH}"


@given(st.lists(st.text(min_size=0, max_size=80), max_size=12))
def test_output_lines_are_input_lines_in_order(lines: list[str]) -> None:
    text = "\n".join(lines)
    out = _lines(strip_chrome(text))
    source = iter(_lines(text))
    assert all(any(line == candidate for candidate in source) for line in out)


def test_a_headline_shaped_first_paragraph_is_the_title() -> None:
    from flows.extract import headline

    text = "Altman Praises DeepSeek AI Model\n\nOpenAI's Sam Altman said so."
    assert headline(text) == "Altman Praises DeepSeek AI Model"
    assert headline("# A Markdown Title\n\nBody text here.") == "A Markdown Title"
    assert headline("This first paragraph is a sentence, so it is no title.\n\nMore.") is None
    assert headline("Only One Paragraph Here") is None
