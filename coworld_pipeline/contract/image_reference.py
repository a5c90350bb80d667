"""The Docker image reference grammar, checked before anything runs.

A reference Docker cannot parse (`/x`, `x/`, `a//b`, `Upper/case`) otherwise surfaces deep in a run
as whatever the engine's API makes of it (an inspect call that answers nothing, a 400 from create).
The grammar is the one of github.com/distribution/reference:

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] component ( "/" component )*
    domain     := host [ ":" port ]        (host: dot-separated DNS labels, or [IPv6])
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex{32,}   (algorithm: [A-Za-z][A-Za-z0-9]* joined by + . _ -)

and a name is at most 255 characters.
"""

from __future__ import annotations

import re

MAX_NAME_CHARS = 255
_SHAPE = "[registry[:port]/]name[/name...][:tag][@digest]"

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII
)


def image_reference_problem(image: str) -> str | None:
    """What makes `image` an invalid Docker image reference, or None when it is one."""
    match = _REFERENCE.fullmatch(image)
    if match is None:
        hint = ""
        if image.startswith("/") or image.endswith("/") or "//" in image:
            hint = " (path components are separated by single '/', none empty)"
        elif _REFERENCE.fullmatch(image.lower()):
            hint = " (repository names are lowercase)"
        return f"invalid image reference {image!r}: expected {_SHAPE}{hint}"
    if len(match.group("name")) > MAX_NAME_CHARS:
        return f"invalid image reference {image[:40]!r}...: the name is over {MAX_NAME_CHARS} characters"
    return None
