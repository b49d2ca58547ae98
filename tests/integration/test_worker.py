"""A worker for one docked recorder, run in-process on a storage-only model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.settings import RecorderModel, Settings, load_settings
from agent.worker import RecorderWorker
from devices.events import RecorderInfo
from ingest.dock import IngestContext
from storage.errors import ConfigError

CCTV_PATTERN = r"^CH(?P<device>\d+)_(?P<date>\d{8})(?P<time>\d{6})\.mp4$"


def test_a_models_own_file_patterns_name_its_files(settings: Settings, station: IngestContext,
                                                   tmp_path: Path, one_clip: Path) -> None:
    model = RecorderModel(name="nvr", usb_vendor="abcd", usb_product="0001",
                          file_patterns=[CCTV_PATTERN])
    volume = tmp_path / "nvr"
    volume.mkdir()
    shutil.copy(one_clip, volume / "CH07_20261120093000.mp4")
    info = RecorderInfo(usb_serial="NVR-1", vendor="abcd", product="0001", model="nvr",
                        volume_path=str(volume))
    worker = RecorderWorker(settings.model_copy(update={"models": [model]}), station, info,
                            mounter=None)
    worker.run()
    assert worker.state == "done", worker.error
    [row] = station.catalog.recordings()
    assert (row.device_no, row.start_from) == ("07", "filename")
    assert row.recording_start.isoformat() == "2026-11-20T01:30:00+00:00"  # 09:30 in +08:00
    assert [e.kind for e in station.catalog.explanations()] == [
        "unregistered_device", "identity_unknown"]  # no officer in these names


def test_a_models_patterns_are_checked(tmp_path: Path) -> None:
    conf = tmp_path / "evidock.toml"
    conf.write_text('[[models]]\nname = "x"\nusb_vendor = "abcd"\nusb_product = "0001"\n'
                    'file_patterns = ["^(?P<device>x)$"]\n')
    with pytest.raises(ConfigError, match=r"models\.0\.file_patterns.*'date' and 'time'"):
        load_settings(conf, {})
