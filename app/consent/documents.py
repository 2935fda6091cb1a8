"""Consent documents as a person reads them (pure): the hash a signature is bound to,
and the sections as safe HTML.

A signature is bound to the SHA-256 of exactly what the person was shown: the version
and language, and that language's text (title, format, sections, quiz questions and
options), as canonical JSON. The right answers and feedback are part of it too, so a
changed quiz is a changed document.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from app.studies.definition import ConsentDocument, ConsentText

# CommonMark without raw HTML: a Markdown body cannot carry a script or a style.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})
# What an HTML body may keep (anything else is dropped): text structure and links.
_ALLOWED_TAGS = {
    *("p", "br", "strong", "em", "b", "i", "u", "ul", "ol", "li", "a", "blockquote"),
    *("h2", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td", "abbr"),
}
_ALLOWED_ATTRIBUTES = {"a": {"href"}, "abbr": {"title"}, "th": {"scope"}}


@dataclass(frozen=True)
class Section:
    heading: str
    html: Markup  # safe to put in a page as it is


def document_sha256(document: ConsentDocument, language: str) -> str:
    """The SHA-256 (hex) of the version's text in `language`, as canonical JSON."""
    text = document.texts[language]
    canonical = json.dumps(
        {"version": document.version, "language": language, "text": text.model_dump(mode="json")},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def sections(text: ConsentText) -> list[Section]:
    """The document's sections, each body rendered (Markdown) or sanitized (HTML)."""
    return [Section(s.heading, body_html(s.body, text.format)) for s in text.sections]


def body_html(body: str, format: str) -> Markup:
    """A section's body as HTML that carries no script, style or event handler."""
    if format == "html":
        cleaned = nh3.clean(
            body,
            tags=_ALLOWED_TAGS,
            attributes=_ALLOWED_ATTRIBUTES,
            url_schemes={"https", "mailto", "tel"},
            link_rel="noopener noreferrer",
        )
        return Markup(cleaned)
    # Markdown rendered without raw HTML is escaped text and markup of its own.
    return Markup(_markdown.render(body))
