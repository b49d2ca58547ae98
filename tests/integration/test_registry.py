"""The custodians' registry, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli import evidock


def test_register_assign_list_show_retire(home: Path, recent_volume: Path) -> None:
    assert evidock("officer", "add", "100231", "--name", "张伟", "--unit-no", "320583000000",
                   "--unit-name", "昆山市城市管理局", "--by", "custodian")[0] == 0
    code, out, _ = evidock("device", "register", "ZFY0001", "--usb-serial", "SIM0001",
                           "--model", "evidock-sim-serial", "--by", "custodian")
    assert code == 0 and "ZFY0001" in out
    assert evidock("device", "assign", "ZFY0001", "100231", "--by", "custodian")[0] == 0
    evidock("ingest", str(recent_volume))  # an ingest must not undo the registry
    code, out, _ = evidock("device", "show", "ZFY0001", "--json")
    shown = json.loads(out)
    assert (shown["usb_serial"], shown["officer"], shown["status"]) == (
        "SIM0001", "100231", "active")
    assert shown["registered_at"] and shown["last_seen"]
    code, out, _ = evidock("device", "list", "--json")
    assert [d["device"] for d in json.loads(out)] == ["ZFY0001"]
    code, out, _ = evidock("officer", "list", "--json")
    assert json.loads(out)[0]["name"] == "张伟"
    assert evidock("device", "retire", "ZFY0001", "--reason", "cracked lens",
                   "--by", "custodian")[0] == 0
    shown = json.loads(evidock("device", "show", "ZFY0001", "--json")[1])
    assert shown["status"] == "retired" and shown["retired_at"]
    assert evidock("verify")[0] == 0  # registry changes are in the event chain


def test_registry_mistakes_are_usage_errors(home: Path) -> None:
    evidock("device", "register", "ZFY0001", "--usb-serial", "S1", "--by", "c")
    code, _, err = evidock("device", "register", "ZFY0002", "--usb-serial", "S1", "--by", "c")
    assert code == 2 and "belongs to device ZFY0001" in err
    code, _, err = evidock("device", "assign", "ZFY0001", "999", "--by", "c")
    assert code == 2 and "officer 999 is not registered" in err
    code, _, err = evidock("device", "show", "NOPE")
    assert code == 2 and "no device NOPE" in err
