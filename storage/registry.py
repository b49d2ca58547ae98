"""The custodians' registry of recorders and officers (R13).

Each change is one transaction with its logged event, like every catalog write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from storage.catalog import Catalog
from storage.errors import NotFound, UsageError
from storage.models import Device, DeviceNote, Officer, now_utc


@dataclass(frozen=True)
class Assignment:
    at: datetime
    seq: int  # the ledger leaf that records it
    how: str  # "register" or "assign"
    officer: str
    by: str | None


class Registry:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def register(self, device_no: str, *, usb_serial: str | None, model: str | None,
                 officer_no: str | None, by: str) -> Device:
        _given(by=by, device=device_no)
        now = now_utc()
        with self.catalog.transaction(f"register device {device_no}") as db:
            if usb_serial:
                other = db.exec(select(Device).where(Device.usb_serial == usb_serial,
                                                     Device.device_no != device_no)).first()
                if other is not None and other.status != "retired":
                    raise UsageError(f"USB serial {usb_serial} belongs to device "
                                     f"{other.device_no}; retire that one first")
            if officer_no:
                _registered(db, officer_no)
            device = db.get(Device, device_no) or Device(device_no=device_no, first_seen=now,
                                                         last_seen=now)
            if device.status == "retired":
                raise UsageError(f"device {device_no} is retired; it cannot be registered again")
            device.usb_serial = usb_serial or device.usb_serial
            device.model = model or device.model
            device.officer_no = officer_no or device.officer_no
            device.registered_at = device.registered_at or now
            db.add(device)
            self.catalog.append_event(db, "device-register", device_no, {
                "by": by, "usb_serial": device.usb_serial, "model": device.model,
                "officer": device.officer_no})
        return device

    def assign(self, device_no: str, officer_no: str, *, by: str) -> Device:
        _given(by=by)
        with self.catalog.transaction(f"assign device {device_no}") as db:
            device = db.get(Device, device_no)
            if device is None:
                raise NotFound(f"no device {device_no}; register it first")
            _registered(db, officer_no)
            device.officer_no = officer_no
            db.add(device)
            self.catalog.append_event(db, "device-assign", device_no,
                                       {"by": by, "officer": officer_no})
        return device

    def retire(self, device_no: str, *, by: str, reason: str) -> Device:
        _given(by=by, reason=reason)
        with self.catalog.transaction(f"retire device {device_no}") as db:
            device = db.get(Device, device_no)
            if device is None:
                raise NotFound(f"no device {device_no}")
            device.status, device.retired_at = "retired", now_utc()
            db.add(device)
            self.catalog.append_event(db, "device-retire", device_no,
                                       {"by": by, "reason": reason})
        return device

    # The custody and maintenance log (R13) ---------------------------------------------

    def maintain(self, device_no: str, *, kind: str, note: str, by: str) -> DeviceNote:
        """A check, repair, fault or firmware entry in the recorder's log."""
        return self._note(device_no, kind, note, by, lambda _device, _db: None)

    def out_of_service(self, device_no: str, *, reason: str, by: str) -> DeviceNote:
        return self._note(device_no, "out-of-service", reason, by,
                          _moves("active", "out_of_service", "not in service"))

    def in_service(self, device_no: str, *, note: str, by: str) -> DeviceNote:
        return self._note(device_no, "in-service", note, by,
                          _moves("out_of_service", "active", "not out of service"))

    def check_out(self, device_no: str, *, officer_no: str, by: str, note: str = "") -> DeviceNote:
        def change(device: Device, db: Session) -> None:
            _registered(db, officer_no)
            if device.status != "active":
                raise UsageError(f"device {device_no} is {device.status.replace('_', ' ')}: "
                                 "it cannot be checked out")
            if device.checked_out_to is not None:
                raise UsageError(f"device {device_no} is checked out to "
                                 f"{device.checked_out_to}; check it in first")
            device.checked_out_to = officer_no
        return self._note(device_no, "check-out", note, by, change, officer_no)

    def check_in(self, device_no: str, *, by: str, note: str = "") -> DeviceNote:
        holder: list[str] = []

        def change(device: Device, _db: Session) -> None:
            if device.checked_out_to is None:
                raise UsageError(f"device {device_no} is not checked out")
            holder.append(device.checked_out_to)
            device.checked_out_to = None
        return self._note(device_no, "check-in", note, by, change, lambda: holder[0])

    def assignments(self, device_no: str) -> list[Assignment]:
        """Every officer the recorder was assigned to, oldest first, from the ledger."""
        found = [Assignment(leaf.at, leaf.seq, kind.removeprefix("device-"),
                            payload.get("officer"), payload.get("by"))
                 for kind in ("device-register", "device-assign")
                 for leaf in self.catalog.leaves_about(kind, device_no)
                 if (payload := json.loads(leaf.body).get("payload", {})).get("officer")]
        return sorted(found, key=lambda a: a.seq)

    def notes(self, device_no: str) -> Sequence[DeviceNote]:
        with self.catalog.reading() as db:
            return db.exec(select(DeviceNote).where(DeviceNote.device_no == device_no)
                           .order_by(col(DeviceNote.id))).all()

    def _note(self, device_no: str, kind: str, note: str, by: str,
              change: Callable[[Device, Session], None],
              officer: str | Callable[[], str] | None = None) -> DeviceNote:
        _given(by=by)
        if kind not in ("check-out", "check-in"):
            _given(note=note)
        with self.catalog.transaction(f"log {kind} of device {device_no}") as db:
            device = db.get(Device, device_no)
            if device is None:
                raise NotFound(f"no device {device_no}; register it first")
            change(device, db)
            db.add(device)
            entry = DeviceNote(device_no=device_no, kind=kind, note=note.strip(), by=by,
                               officer_no=officer() if callable(officer) else officer,
                               at=now_utc())
            db.add(entry)
            db.flush()
            self.catalog.append_event(db, f"device-{kind}", device_no,
                                       {"by": by, "entry": entry.id})
        return entry

    def add_officer(self, officer: Officer, *, by: str) -> Officer:
        _given(by=by, officer=officer.officer_no, name=officer.name)
        with self.catalog.transaction(f"add officer {officer.officer_no}") as db:
            db.merge(officer)
            if officer.login is not None:
                taken = db.exec(select(Officer).where(Officer.login == officer.login,
                                                      Officer.officer_no != officer.officer_no)
                                ).first()
                if taken is not None:
                    raise UsageError(f"login {officer.login} is officer {taken.officer_no}'s")
            db.merge(officer)
            self.catalog.append_event(db, "officer", officer.officer_no, {
                "by": by, "name": officer.name, "unit_no": officer.unit_no,
                "unit_name": officer.unit_name, "role": officer.role,
                "login": officer.login})
        return officer

    def devices(self) -> Sequence[Device]:
        with self.catalog.reading() as db:
            return db.exec(select(Device).order_by(col(Device.device_no))).all()

    def get(self, device_no: str) -> Device | None:
        with self.catalog.reading() as db:
            return db.get(Device, device_no)

    def device(self, device_no: str) -> Device:
        found = self.get(device_no)
        if found is None:
            raise NotFound(f"no device {device_no}")
        return found

    def by_usb_serial(self, usb_serial: str) -> Device | None:
        with self.catalog.reading() as db:
            return db.exec(select(Device).where(Device.usb_serial == usb_serial)
                           .order_by(col(Device.status))).first()

    def officer(self, officer_no: str) -> Officer | None:
        with self.catalog.reading() as db:
            return db.get(Officer, officer_no)

    def officers(self) -> Sequence[Officer]:
        with self.catalog.reading() as db:
            return db.exec(select(Officer).order_by(col(Officer.officer_no))).all()


def _given(**values: str | None) -> None:
    """Refuse an empty or blank value for any of these options."""
    for name, value in values.items():
        if value is None or not value.strip():
            raise UsageError(f"the {name} number is empty" if name in ("officer", "device")
                             else f"--{name} is empty")


def _moves(before: str, after: str, refusal: str) -> Callable[[Device, Session], None]:
    """A status change from ``before`` to ``after``; any other status is refused."""
    def change(device: Device, _db: Session) -> None:
        if device.status != before:
            raise UsageError(f"device {device.device_no} is "
                             f"{device.status.replace('_', ' ')}, {refusal}")
        device.status = after
    return change


def _registered(db: Session, officer_no: str) -> None:
    found = db.get(Officer, officer_no)
    if found is None or found.role is None:
        raise UsageError(f"officer {officer_no} is not registered; add the officer first "
                         "(`evidock officer add`)")
