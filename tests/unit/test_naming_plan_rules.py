from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.settings import DEFAULT_PATTERN
from devices.volume import SourceEntry
from ingest.naming import compile_patterns, never_matches, parse_name
from ingest.plan import UNKNOWN, HeldByDevice, Identity, make_plan
from ingest.rules import Clip, gaps, timing

PATTERNS = compile_patterns([DEFAULT_PATTERN])
SH = ZoneInfo("Asia/Shanghai")


def entry(path: str, size: int = 10, mtime: int = 1_700_000_000 * 10**9) -> SourceEntry:
    return SourceEntry(path.encode(), path, "utf-8", size, mtime, inode=1)


def test_default_pattern_reads_device_officer_time_and_flag() -> None:
    info = parse_name("DSJ_ZFY0001_100231_20261120_093000_IMP.MP4", PATTERNS, SH)
    assert info is not None
    assert (info.device, info.officer, info.important) == ("ZFY0001", "100231", True)
    assert info.start == datetime(2026, 11, 20, 1, 30, tzinfo=UTC)


def test_names_that_do_not_fit_or_carry_impossible_dates_give_none() -> None:
    assert parse_name("IMG_0001.JPG", PATTERNS, SH) is None
    assert parse_name("DSJ_ZFY0001_100231_20261340_093000.MP4", PATTERNS, SH) is None
    assert parse_name("DSJ_ZFY0001_100231_20261120_093000.MP4\n", PATTERNS, SH) is None


def test_a_second_pattern_is_tried_after_the_first() -> None:
    custom = re.compile(r"^(?P<date>\d{8})(?P<time>\d{6})_(?P<device>\w+)\.mp4$")
    info = parse_name("20261120093000_CAM7.mp4", [*PATTERNS, custom], UTC)
    assert info is not None and info.device == "CAM7" and info.officer is None


def test_plan_orders_oldest_first_and_sets_aside_what_is_held() -> None:
    late = entry("DSJ_D1_O1_20261120_110000.MP4")
    early = entry("DSJ_D1_O1_20261120_090000.MP4")
    held = {("D1", early.path, early.size, early.mtime_ns)}
    plan = make_plan([late, early], Identity(), PATTERNS, SH, held)
    assert [p.entry.path for p in plan.to_copy] == [late.path]
    assert [p.entry.path for p in plan.already_held] == [early.path]
    again = make_plan([late, early], Identity(), PATTERNS, SH, set())
    assert [p.entry.path for p in again.to_copy] == [early.path, late.path]


def test_a_held_file_that_changed_size_is_copied_again() -> None:
    e = entry("DSJ_D1_O1_20261120_090000.MP4", size=11)
    plan = make_plan([e], Identity(), PATTERNS, SH, {("D1", e.path, 10, e.mtime_ns)})
    assert len(plan.to_copy) == 1


def test_attribution_follows_the_recorder_then_names_then_the_given_values() -> None:
    e = entry("DSJ_D1_O1_20261120_090000.MP4")
    [p] = make_plan([e], Identity(device="D9"), PATTERNS, SH, set()).to_copy
    assert (p.device, p.officer, p.name_device) == ("D9", "O1", "D1")  # the recorder's GID
    [p] = make_plan([e], Identity(officer="O7"), PATTERNS, SH, set()).to_copy
    assert (p.device, p.officer) == ("D1", "O1")  # the name's officer, not the GID's
    [p] = make_plan([e], Identity(given_device="D5", given_officer="O5"), PATTERNS, SH,
                    set()).to_copy
    assert (p.device, p.officer) == ("D1", "O1")  # given values never rewrite the names
    plain = entry("IMG_0001.JPG")
    [p] = make_plan([plain], Identity(given_device="D5", given_officer="O5"), PATTERNS, SH,
                    set()).to_copy
    assert (p.device, p.officer) == ("D5", "O5")  # ... but fill in where nothing else says


def test_unnamed_files_fall_back_to_mtime_and_unknown_identity() -> None:
    e = entry("notes/clip.bin", mtime=1_763_600_000 * 10**9)
    [p] = make_plan([e], Identity(), PATTERNS, SH, set()).to_copy
    assert (p.device, p.officer, p.start_from) == (UNKNOWN, UNKNOWN, "mtime")
    assert p.start == datetime.fromtimestamp(1_763_600_000, UTC)


def test_deadline_is_end_plus_window_and_lateness_is_strict() -> None:
    start = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    t = timing(start, 600.0, start + timedelta(hours=24, minutes=10), 24)
    assert t.end == start + timedelta(minutes=10)
    assert t.deadline == start + timedelta(hours=24, minutes=10)
    assert not t.late
    assert timing(start, 600.0, t.deadline + timedelta(seconds=1), 24).late
    assert timing(start, None, start, 2).deadline == start + timedelta(hours=2)


def _clip(n: int, start_s: float, length_s: float, *, important: bool = False,
          new: bool = True) -> Clip:
    base = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    return Clip(n, base + timedelta(seconds=start_s),
                base + timedelta(seconds=start_s + length_s), important, new)


def test_gaps_between_the_tolerance_and_the_maximum() -> None:
    clips = [_clip(1, 0, 10), _clip(2, 12, 10),  # 2 s: a segment boundary, not a gap
             _clip(3, 22.5, 10),  # 0.5 s
             _clip(4, 332.5, 10),  # exactly 300 s: a gap
             _clip(5, 643.0, 10)]  # 300.5 s: a separate recording
    found = list(gaps(reversed(clips), 2.0, 300.0))  # any order in
    assert [(g.before.id, g.after.id, g.seconds) for g in found] == [(3, 4, 300.0)]
    assert not found[0].violation


def test_a_gap_around_an_important_clip_is_a_violation_and_old_pairs_are_skipped() -> None:
    clips = [_clip(1, 0, 10, new=False), _clip(2, 20, 10, new=False),  # found by an old dock
             _clip(3, 40, 10, important=True), _clip(4, 30.0, 5, new=False)]
    found = list(gaps(clips, 2.0, 300.0))
    assert [(g.before.id, g.after.id) for g in found] == [(4, 3)]  # 5 s before the IMP clip
    assert found[0].violation
    assert list(gaps([_clip(1, 0, 10), _clip(2, 5, 10)], 2.0, 300.0)) == []  # overlap


def test_the_window_starts_at_the_return_from_a_declared_duty() -> None:
    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    back = start + timedelta(hours=30)
    on_duty = timing(start, 60.0, back + timedelta(hours=24), 24.0, back)
    assert on_duty.deadline == back + timedelta(hours=24) and not on_duty.late
    assert timing(start, 60.0, back + timedelta(hours=24, seconds=1), 24.0, back).late
    # a return before the recording's end never shortens the window
    early = timing(start, 60.0, start, 24.0, start - timedelta(hours=5))
    assert early.deadline == start + timedelta(seconds=60, hours=24)


def test_dates_and_times_with_separators() -> None:
    patterns = compile_patterns([
        r"^REC_(?P<device>\w+?)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<time>\d{2}-\d{2}-\d{2})\.MP4$",
        r"^(?P<date>\d{4}\.\d{2}\.\d{2}) (?P<time>\d{2}:\d{2}:\d{2})\.MOV$"])
    zone = ZoneInfo("Asia/Shanghai")
    info = parse_name("REC_ZFY7_2026-11-20_08-15-30.MP4", patterns, zone)
    assert info is not None and info.device == "ZFY7"
    assert info.start == datetime(2026, 11, 20, 8, 15, 30, tzinfo=zone)
    other = parse_name("2026.11.20 23:59:59.MOV", patterns, zone)
    assert other is not None and other.start.hour == 23
    assert parse_name("REC_ZFY7_2026-13-20_08-15-30.MP4", patterns, zone) is None  # month 13


def test_a_pattern_may_declare_its_time_part_by_part_in_any_order() -> None:
    patterns = compile_patterns([
        r"^VID_(?P<day>\d{2})\.(?P<month>\d{2})\.(?P<year>\d{4})_(?P<hour>\d{2})"
        r"(?P<minute>\d{2})(?P<second>\d{2})\.mp4$",
        r"^CAM(?P<device>\d+)_(?P<month>\d{2})(?P<day>\d{2})(?P<year>\d{2})-(?P<hour>\d{2})h"
        r"(?P<minute>\d{2})\.avi$"])
    zone = ZoneInfo("Asia/Shanghai")
    info = parse_name("VID_20.11.2026_081530.mp4", patterns, zone)
    assert info is not None and info.start == datetime(2026, 11, 20, 8, 15, 30, tzinfo=zone)
    info = parse_name("CAM7_112026-23h59.avi", patterns, zone)  # two-digit year, no seconds
    assert info is not None and info.device == "7"
    assert info.start == datetime(2026, 11, 20, 23, 59, 0, tzinfo=zone)
    assert parse_name("VID_31.11.2026_081530.mp4", patterns, zone) is None  # 31 November
    assert parse_name("CAM7_112026-24h00.avi", patterns, zone) is None


@pytest.mark.parametrize(("pattern", "why"), [
    (r"(?P<date>\d{7})_(?P<time>\d{6})\.mp4", "13 to 13 digits together"),
    (r"(?P<date>\d{8})(?P<time>\d{6,7})_\d(?P<x>\d{9})", None),  # 14 possible: accepted
    (r"(?P<date>\d{4}年\d{2}月\d{2}日)(?P<time>\d{6})", "neither a digit nor a separator"),
    (r"(?P<date>[a-z]{8})_(?P<time>\d{6})", "6 to 6 digits together"),
    (r"(?P<date>\d{4}[xy]\d{4})_(?P<time>\d{6})", "neither a digit nor a separator"),
    (r"(?P<day>\d{3})(?P<month>\d\d)(?P<year>\d{4})(?P<hour>\d\d)(?P<minute>\d\d)",
     "'day' group holds 3 to 3 digits"),
    (r"(?P<year>\d{3})(?P<month>\d\d)(?P<day>\d\d)(?P<hour>\d\d)(?P<minute>\d\d)",
     "'year' group holds 3 to 3 digits"),
    (r"x{300}(?P<date>\d{8})(?P<time>\d{6})", "at least 314 characters"),
    (r"(?P<date>\d{4}-\d\d-\d\d|\d{8})_(?P<time>\d\d:?\d\d:?\d\d)", None),
    (r"(?P<date>.+)_(?P<time>.+)", None),
])
def test_a_pattern_that_can_never_give_a_time_is_named(pattern: str, why: str | None) -> None:
    found = never_matches(pattern)
    assert (found is None) if why is None else (found is not None and why in found), found


def test_a_plan_reads_the_held_sources_of_the_devices_it_meets_only() -> None:
    asked: list[str] = []

    def load(device: str) -> set[tuple[str, str, int, int]]:
        asked.append(device)
        return {("D1", "DCIM/a.MP4", 10, 5)} if device == "D1" else set()

    held = HeldByDevice(load)
    assert ("D1", "DCIM/a.MP4", 10, 5) in held
    assert ("D1", "DCIM/b.MP4", 10, 5) not in held and ("D2", "DCIM/a.MP4", 10, 5) not in held
    assert "not a key" not in held
    assert asked == ["D1", "D2"]  # each device once, and no other
