"""Checks that a report page holds only the markup the report writes itself (nothing from the data)."""

from __future__ import annotations

from html.parser import HTMLParser

# The page's own elements, and the SVG elements matplotlib draws.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "main", "footer", "section", "h1", "h2", "h3",
    "p", "div", "span", "b", "br", "a", "table", "thead", "tbody", "tr", "th", "td",
    "svg", "g", "path", "rect", "line", "text", "defs", "clippath", "use", "metadata", "polyline",
    "polygon", "circle", "tspan", "rdf:rdf", "cc:work", "dc:type", "dc:date", "dc:format", "dc:creator",
    "cc:agent", "dc:title",
}


class MarkupAudit(HTMLParser):
    """Collects what a page holds that the report never writes: unknown tags, event handlers, non-http links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"unexpected <{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name in {"href", "xlink:href", "src"} and value and not value.startswith(("#", "http://", "https://")):
                self.problems.append(f"{name}={value!r} on <{tag}>")


def audit(page: str) -> list[str]:
    parser = MarkupAudit()
    parser.feed(page)
    parser.close()
    return parser.problems
