"""What a recorder's file name says: device, officer, start time, important flag (pure).

A pattern gives the time in one of two declared ways (docs/operations.md):
``date`` (year, month, day) and ``time`` (hour, minute, second) groups, in that
order, with separators allowed inside them; or one group per part, in any order:
``year`` (four digits, or two for 2000-2099), ``month``, ``day``, ``hour``,
``minute`` and, if the recorder writes it, ``second`` (else 0).
"""

from __future__ import annotations

import re
import re._constants as c  # type: ignore[import-not-found]  # parsed patterns
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from re._parser import parse as sre_parse  # type: ignore[import-not-found]
from typing import Any

PARTS = ("year", "month", "day", "hour", "minute", "second")
_SEPARATORS = re.compile(r"[-_.:/ T]")


@dataclass(frozen=True)
class NameInfo:
    device: str | None
    officer: str | None
    start: datetime  # aware, in the recorder's zone
    important: bool


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    return [re.compile(p) for p in patterns]


def time_groups(groups: Sequence[str]) -> str | None:
    """Which way a pattern declares its time ('date-time' or 'parts'); None: neither."""
    names = set(groups)
    if {"date", "time"} <= names:
        return "date-time"
    if set(PARTS[:5]) <= names:
        return "parts"
    return None


def _moment(groups: dict[str, str | None]) -> datetime | None:
    """The naive time the groups give, or None when they give no real one."""
    try:
        if groups.get("date") is not None and groups.get("time") is not None:
            digits = _SEPARATORS.sub("", f"{groups['date']}{groups['time']}")
            if len(digits) != 14 or not digits.isascii() or not digits.isdigit():
                return None
            return datetime.strptime(digits, "%Y%m%d%H%M%S")
        parts = [groups.get(name) or ("0" if name == "second" else "") for name in PARTS]
        if not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
            return None
        year = int(parts[0]) + (2000 if len(parts[0]) == 2 else 0)
        if len(parts[0]) not in (2, 4):
            return None
        month, day, hour, minute, second = (int(p) for p in parts[1:])
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def parse_name(name: str, patterns: Sequence[re.Pattern[str]], zone: tzinfo | None
               ) -> NameInfo | None:
    """The first pattern matching all of ``name`` with a real date and time, else None.

    ``zone`` is the zone of the recorder's clock; None means the station's local zone.
    """
    for pattern in patterns:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        groups = match.groupdict()
        naive = _moment(groups)
        if naive is None:
            continue
        start = naive.replace(tzinfo=zone) if zone is not None else naive.astimezone()
        return NameInfo(
            device=groups.get("device") or None,
            officer=groups.get("officer") or None,
            start=start,
            important=bool(groups.get("important")),
        )
    return None


# Refusing a pattern that can never give a time -----------------------------------------

_SEPARATOR_CHARS = "-_.:/ T"
_MAX_NAME = 255  # characters in a FAT, exFAT or ext4 file name
_MANY = 10**6  # "unbounded" in digit counts


@dataclass(frozen=True)
class _Digits:
    """Bounds on what a piece of a pattern can match: the fewest and most digits, and
    the fewest characters that are neither digits nor ``allowed`` separators."""

    least: int
    most: int
    others: int


def _in_class(items: list[tuple[Any, Any]], ch: str) -> bool:
    """Whether a character class (re's parsed IN items) holds ``ch``."""
    code, negate, found = ord(ch), False, False
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            found |= av == code
        elif op is c.RANGE:
            found |= av[0] <= code <= av[1]
        elif op is c.CATEGORY:
            found |= bool(re.fullmatch(_CATEGORIES.get(av, "(?s:.)"), ch))
        else:  # anything else: assume it may hold the character (never refuse wrongly)
            found = True
    return found != negate


_CATEGORIES = {c.CATEGORY_DIGIT: r"\d", c.CATEGORY_NOT_DIGIT: r"\D", c.CATEGORY_SPACE: r"\s",
               c.CATEGORY_NOT_SPACE: r"\S", c.CATEGORY_WORD: r"\w",
               c.CATEGORY_NOT_WORD: r"\W"}


_ONE_CHARACTER = (c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY)


def _holds(op: Any, av: Any, ch: str) -> bool:
    """Whether a one-character item of a parsed pattern can match ``ch``."""
    if op is c.LITERAL:
        return bool(av == ord(ch))
    if op is c.NOT_LITERAL:
        return bool(av != ord(ch))
    if op is c.IN:
        return _in_class(av, ch)
    return True  # ANY


def _only_digits(op: Any, av: Any) -> bool:
    """Whether a one-character item can match only digits (0-9, or ``\\d``)."""
    if op is c.LITERAL:
        return chr(av).isdigit()
    if op is not c.IN:
        return False
    return all((kind is c.CATEGORY and value is c.CATEGORY_DIGIT)
               or (kind is c.RANGE and 48 <= value[0] <= value[1] <= 57)
               or (kind is c.LITERAL and 48 <= value <= 57) for kind, value in av)


def _digits(items: Any, allowed: str) -> _Digits:
    least = most = others = 0
    for op, av in items:
        if op in _ONE_CHARACTER:
            digit = any(_holds(op, av, d) for d in "0123456789")
            least += _only_digits(op, av)
            most += digit
            others += not digit and not any(_holds(op, av, s) for s in allowed)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, high, sub = av
            inner = _digits(sub, allowed)
            least += low * inner.least
            others += low * inner.others
            most += _MANY if high == c.MAXREPEAT and inner.most else min(high * inner.most,
                                                                         _MANY)
        elif op is c.SUBPATTERN:
            inner = _digits(av[-1], allowed)
            least, most, others = least + inner.least, most + inner.most, \
                others + inner.others
        elif op is c.ATOMIC_GROUP:
            inner = _digits(av, allowed)
            least, most, others = least + inner.least, most + inner.most, \
                others + inner.others
        elif op is c.BRANCH:
            options = [_digits(b, allowed) for b in av[1]]
            least += min(o.least for o in options)
            most += max(o.most for o in options)
            others += min(o.others for o in options)
        elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            continue  # zero width
        else:  # back-references, conditionals: could be anything
            most = _MANY
    return _Digits(least, min(most, _MANY), others)


def _group(parsed: Any, index: int) -> Any:
    """The parsed items of group ``index`` (the first place it appears)."""
    for op, av in parsed:
        if op is c.SUBPATTERN:
            if av[0] == index:
                return av[-1]
            found = _group(av[-1], index)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            found = _group(av[2], index)
        elif op is c.BRANCH:
            found = next((g for b in av[1] if (g := _group(b, index)) is not None), None)
        elif op in (c.ASSERT, c.ASSERT_NOT):
            found = _group(av[1], index)
        elif op is c.ATOMIC_GROUP:
            found = _group(av, index)
        else:
            continue
        if found is not None:
            return found
    return None


def never_matches(pattern: str) -> str | None:
    """Why ``pattern`` can never give a recording's time from a file name, or None.

    A sound analysis of the groups' bounds: a refused pattern truly can never give a
    time; some patterns that never do are not caught (e.g. contradictory anchors)."""
    parsed = sre_parse(pattern)
    width = parsed.getwidth()[0]
    if width > _MAX_NAME:
        return f"it needs at least {width} characters; a file name has at most {_MAX_NAME}"
    index = parsed.state.groupdict
    way = time_groups(list(index))

    def bounds(name: str, allowed: str) -> _Digits:
        return _digits(_group(parsed.data, index[name]) or [], allowed)

    if way == "date-time":
        lenient = _SEPARATOR_CHARS + "t"  # 't' is 'T' under (?i): never refuse wrongly
        date, clock = bounds("date", lenient), bounds("time", lenient)
        for name, found in (("date", date), ("time", clock)):
            if found.others:
                return (f"its '{name}' group always holds a character that is neither a digit "
                        f"nor a separator ({_SEPARATOR_CHARS!r})")
        if date.most + clock.most < 14 or date.least + clock.least > 14:
            return (f"its 'date' and 'time' groups hold {date.least + clock.least} to "
                    f"{date.most + clock.most} digits together; a date and time is 14 "
                    "(YYYYMMDD and HHMMSS)")
        return None
    for name in PARTS:
        if name not in index:
            continue
        found = bounds(name, "")
        need = (2, 4) if name == "year" else (1, 2)
        if found.others or not any(found.least <= n <= found.most for n in need):
            return (f"its '{name}' group holds {found.least} to {found.most} digits"
                    + (" and always another character" if found.others else "")
                    + f"; it must hold {need[0]} or {need[1]} digits")
    return None
