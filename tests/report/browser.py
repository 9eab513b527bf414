"""The report opened in a real headless browser: Debian's Chromium, driven by the ``playwright`` package
(never ``playwright install``: the system's browser is used through ``executable_path``)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]

# Per chart: its drawn size and how many shapes it holds.
_CHARTS_JS = """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  const box = svg.getBoundingClientRect();
  return {width: box.width, height: box.height,
          shapes: svg.querySelectorAll('path, rect, line, polyline, polygon, use').length,
          texts: svg.querySelectorAll('text').length};
})"""


@dataclass
class Visit:
    """What the browser saw while loading the page."""

    title: str = ""
    charts: list[dict[str, Any]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    scripts: int = 0
    body_text: str = ""
    overflow_x: bool = False


def available() -> bool:
    return Path(CHROMIUM).exists()


def visit(page_file: Path, screenshot: Path, width: int = 1400, height: int = 1000) -> Visit:
    """Open ``page_file`` at the given viewport, record everything, save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    seen = Visit()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen.page_errors.append(str(e)))
            page.on("request", lambda r: seen.requests.append(r.url))
            page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))
            page.goto(page_file.resolve().as_uri(), wait_until="load")
            page.wait_for_timeout(300)  # anything scheduled by a script (there must be none) would run now
            seen.title = page.title()
            seen.charts = page.evaluate(_CHARTS_JS)
            seen.scripts = page.evaluate("() => document.scripts.length")
            seen.body_text = page.inner_text("body")
            seen.overflow_x = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return seen
