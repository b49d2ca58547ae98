"""The export package's pure parts: names, which leaves concern a recording, strict JSON,
the description's escaping and times."""

from __future__ import annotations

import json

import pytest

from ingest import description
from ingest.package import (
    DuplicateKey,
    concerns,
    leaves_about,
    name_problem,
    package_name,
    strict_json,
)


@pytest.mark.parametrize("name", [
    "files/Agency/ZFY0001/2026-11-20/a.MP4", "quarantine/A/B/2026-11-20/x.MP4",
    "files/某市城管局/ZFY0001/2026-11-20/a.MP4"])
def test_safe_names(name: str) -> None:
    assert name_problem(name) is None
    assert package_name(name) == name


@pytest.mark.parametrize("name", [
    "", "/files/a", "files/../../etc/passwd", "files//a", "files/./a", "manifest.json",
    "files", "other/a", "files\\a", "files/a\x00", 7, None])
def test_unsafe_names(name: object) -> None:
    assert name_problem(name) is not None


def _leaf(seq: int, changes: list[dict[str, object]]) -> str:
    return json.dumps({"seq": seq, "kind": "x", "changes": changes}, sort_keys=True)


def test_leaves_about_a_recording_and_its_explanations_and_the_station() -> None:
    leaves = [
        (0, "station", _leaf(0, [{"table": "station", "key": "s1", "row": {"key_id": "k"}}])),
        (1, "recording", _leaf(1, [{"table": "recording", "key": "7", "row": {"id": 7}}])),
        (2, "recording", _leaf(2, [{"table": "recording", "key": "17", "row": {"id": 17}}])),
        (3, "explanation", _leaf(3, [{"table": "explanation", "key": "1",
                                      "row": {"recording_id": 7}}])),
        (4, "explanation", _leaf(4, [{"table": "explanation", "key": "2",
                                      "row": {"recording_id": 70}}])),
        (5, "annotate", _leaf(5, [{"table": "recording", "key": "7", "row": {"id": 7}}])),
        (6, "session-end", _leaf(6, [])),
    ]
    index = leaves_about(leaves, [7], "s1")
    assert [leaf.seq for leaf in index.found[7]] == [1, 3, 5]
    assert [leaf.seq for leaf in index.station_leaves] == [0]
    assert not concerns({"changes": [{"table": "explanation", "row": {"recording_id": True}}]},
                        1)


def test_strict_json_refuses_duplicates_and_constants() -> None:
    assert strict_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(DuplicateKey):
        strict_json(b'{"a": 1, "a": 2}')
    for bad in (b'{"a": NaN}', b'{"a": Infinity}', b"\xff", b"{"):
        with pytest.raises(ValueError):
            strict_json(bad)


def _manifest(source_path: str) -> dict[str, object]:
    record = {"device": "ZFY0001", "officer": "100231", "source_path": source_path,
              "recording_start": "2026-11-20T08:00:00.000000Z",
              "recording_end": "2026-11-20T08:05:00.000000Z",
              "ingested_at": "2026-11-20T10:00:00.000000Z"}
    return {
        "package_id": "p", "agency": "某局", "station": "s1", "key_id": "ed25519:00",
        "created_at": "2026-11-21T01:02:03.000000Z",
        "collection": {"collector": "李明", "place": "证据室", "reason": "举证",
                       "approved_by": "赵局长", "case": None, "recording_ids": [1],
                       "timezone": "Asia/Shanghai"},
        "recordings": [{"id": 1, "record": record, "catalog": {"officer_name": "张伟"},
                        "file": "files/a.MP4", "size": 10, "sha256": "ab" * 32,
                        "leaves": [{"seq": 3, "kind": "recording"}]}],
    }


def test_description_escapes_recorder_text_and_shows_local_times() -> None:
    hostile = "DCIM/<script>alert(1)</script>\x1b[2J\u202e.MP4"
    manifest = _manifest(hostile)
    page = description.html_document(manifest)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "\x1b" not in page and "\u202e" not in page and "\\x1b" in page
    text = description.text(manifest)
    assert "\x1b" not in text and "\\u202e" in text
    assert "提取时间 Time of collection: 2026-11-21 09:02:03 (UTC+08:00)" in text
    assert "开始时间 Start: 2026-11-20 16:00:00 (UTC+08:00)" in text
    assert "执法人员 Officer: 100231 张伟" in text
    assert "Noto Sans CJK SC" in page and "WenQuanYi Zen Hei" in page
