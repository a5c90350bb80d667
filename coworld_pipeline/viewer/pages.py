"""The web app's HTML: tiny pages, every name from the database escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2em;max-width:70em;color:#222}"
    "table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}"
    ".failed{color:#b00}.muted{color:#777}"
)


def text(value: Any) -> str:
    """A value as page text: escaped, and never Python's `None`."""
    return "" if value is None else escape(str(value))


def episode_path(route: str, episode_id: str) -> str:
    return f"/{route}/{quote(episode_id, safe='')}"


def page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{text(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{text(title)}</h1>{body}<p class='muted'><a href='/'>all leagues</a></p></body></html>"
    ).encode()


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rows of already-escaped cells."""
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def not_available(title: str, reason: str, links: Sequence[tuple[str, str]] = ()) -> bytes:
    """The 404 page: why there is nothing to show, and where to look instead."""
    extra = "".join(f"<p><a href='{escape(href, quote=True)}'>{text(label)}</a></p>" for label, href in links)
    return page(title, f"<p class='failed'>{text(reason)}</p>{extra}")
