"""HTML (Mastodon statuses and bios, feed entries) → plain text.

Why the standard library's `html.parser` and not BeautifulSoup/bleach: we never render this
HTML, we only need its text (the dashboard and the helpdesks escape whatever we hand them), so
a sanitiser's allow-lists buy nothing, and `html.parser` is tolerant of broken markup, has no
dependency to keep patched, and decodes entities. What matters for safety is what we drop:
`<script>`, `<style>` and similar containers lose their content, attributes (`href`,
`onerror`…) are never copied into the text, and the output is length-capped by the caller.
Mastodon's link shortening (`<span class="invisible">https://www.</span>…`) is kept as the
full URL because the invisible parts are plain text nodes.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "li", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"}
_SKIP = {"script", "style", "template", "noscript", "iframe", "object", "svg", "math", "head", "title"}


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.parts.append(data)


def html_to_text(html: str | None, limit: int = 20_000) -> str:
    """Visible text of an HTML fragment, paragraphs separated by a blank line."""
    if not html:
        return ""
    collector = _TextCollector()
    try:
        collector.feed(html[: limit * 20])  # markup is bulkier than text; never parse megabytes
        collector.close()
    except Exception:  # html.parser is lenient, but a parser bug must not lose the post
        return re.sub(r"<[^>]*>", " ", html)[:limit].strip()
    text = "".join(collector.parts).replace("\r\n", "\n").replace("\xa0", " ")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()[:limit]
