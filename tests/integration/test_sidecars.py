"""Not everything is a recording: GPS logs, metadata and subtitles beside a clip are
stored and signed as attachments of it, and never called damaged media."""

from __future__ import annotations

from pathlib import Path

from devices.volume import FolderVolume
from ingest.dock import IngestContext
from ingest.verify import verify_store
from tests.conftest import run_dock

CLIP = "DSJ_ZFY0001_100231_20261120_160000"


def test_sidecars_are_attachments_not_damaged_media(station: IngestContext,
                                                     volume: Path) -> None:
    folder = volume / "DCIM" / "100MEDIA"
    (folder / f"{CLIP}.GPS").write_text("$GPRMC,080000,A,3114.123,N,12128.456,E\n")
    (folder / f"{CLIP}.json").write_text('{"lat": 31.2, "lon": 121.4}')
    (folder / f"{CLIP}.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\n张三\n")
    (folder / "DSJ_ZFY0001_100231_20261120_170000.GPS").write_text("$GPRMC,lonely\n")
    summary = run_dock(station, FolderVolume(volume))
    assert not [e for e in summary.explanations if e.kind.startswith("media_")
                and e.source_path and not e.source_path.endswith("163000.MP4")]
    rows = {Path(r.source_path).name: r for r in station.catalog.recordings()}
    main = rows[f"{CLIP}.MP4"]
    for ext in ("GPS", "json", "vtt"):
        side = rows[f"{CLIP}.{ext}"]
        assert side.sidecar and side.attached_to == main.id and side.state == "stored"
        assert side.duration_s is None and side.media_json is None
    lonely = rows["DSJ_ZFY0001_100231_20261120_170000.GPS"]
    assert lonely.sidecar and lonely.attached_to is None
    assert not main.sidecar and main.attached_to is None
    report = verify_store(station.catalog, station.vault, {}, station_id="station-1")
    assert report.ok, report.problems  # signed and verified like every recording


def test_an_empty_sidecar_is_still_a_fault(station: IngestContext, volume: Path) -> None:
    (volume / "DCIM" / "100MEDIA" / f"{CLIP}.GPS").write_bytes(b"")
    summary = run_dock(station, FolderVolume(volume))
    assert [e.kind for e in summary.explanations
            if e.source_path and e.source_path.endswith(".GPS")] == ["empty_file"]
