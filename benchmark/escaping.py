"""User-supplied text made inert for the medium it is rendered in (model names, file names, rejection reasons).

A leaderboard shows text written by submitters. Unescaped, a model name like
``evil | 9.99 | x |\\n| 1 | [click](http://a.example)`` forges a table row and a live link in markdown, ``<script>``
runs in the HTML page, and ``$\\frac{}$`` makes matplotlib's mathtext parser fail. One function per medium:

- :func:`markdown_text`: control characters and newlines become spaces, then every character markdown (and
  GitHub's tables) gives a meaning is backslash-escaped (CommonMark "backslash escapes": any ASCII punctuation
  may be escaped; ``|`` is escaped inside table cells by GFM), and ``<``/``>``/``&`` become entities so no raw
  HTML or autolink survives;
- :func:`html_text`: :func:`html.escape` (quotes included) after the same control-character clean-up;
- :func:`plot_text`: control characters removed; the plot is drawn with matplotlib's ``text.parse_math`` off,
  so ``$`` is drawn as a dollar sign instead of starting mathtext (which fails on e.g. ``$\\frac{}$``);
- :func:`plain_text`: the terminal: control characters (escape sequences, newlines) removed, nothing escaped, so
  the summary reads ``Test set: 4 clips``, not markdown's ``Test set\\: 4 clips``.

All three also cut very long text (:data:`MAX_CHARS`), which would otherwise push a table or a plot apart.
"""

from __future__ import annotations

import html
import re

MAX_CHARS = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
#: Escaped in markdown: emphasis, code, links and images, tables, strikethrough, and ``.``/``:`` which
#: GitHub's extended autolinks need (``www.x``, ``http://``). ``<``, ``>`` and ``&`` become entities.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()!|~.:])")


def _clean(text: object, max_chars: int | None) -> str:
    text = " ".join(_CONTROL.sub(" ", str(text)).split())
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text


def markdown_text(text: object, max_chars: int | None = MAX_CHARS) -> str:
    """``text`` as literal markdown (safe in a table cell or a list item)."""
    cleaned = _clean(text, max_chars)
    cleaned = cleaned.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", cleaned)


def html_text(text: object, max_chars: int | None = MAX_CHARS) -> str:
    """``text`` as literal HTML text or attribute value."""
    return html.escape(_clean(text, max_chars), quote=True)


def plain_text(text: object, max_chars: int | None = MAX_CHARS) -> str:
    """``text`` as one plain line for a terminal (no escapes: a terminal gives punctuation no meaning)."""
    return _clean(text, max_chars)


def plot_text(text: object, max_chars: int | None = 40) -> str:
    """``text`` as one line for a matplotlib label drawn with ``text.parse_math`` off."""
    return plain_text(text, max_chars)
