"""Text from recorders made safe to show: on a terminal, in the journal, in one log line.

Names and replies come from devices nobody here controls. Control characters
(a newline that forges a log line, an escape sequence that rewrites the
terminal), bidirectional overrides and other invisible format characters are
shown as escapes (``\\n``, ``\\x1b``, ``\\u202e``); everything printable,
Chinese included, is kept as it is. A backslash is doubled so an escape in
the output always means an escape was made.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# Cc control, Cf format (bidi overrides, zero-width), Zl/Zp line and paragraph separators,
# Cs lone surrogates (from undecodable file names), Co private use, Cn unassigned.
_HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) not in _HIDDEN:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else (
        f"\\U{code:08x}")


def shown(text: str | None, limit: int = 300) -> str:
    """``text`` safe for one line of a terminal or the journal, cut to ``limit`` characters."""
    if text is None:
        return "unknown"
    out = "".join(_escape(c) for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"
