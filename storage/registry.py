"""The custodians' registry of recorders and officers (R13).

Each change is one transaction with its logged event, like every catalog write.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select

from storage.catalog import Catalog
from storage.errors import NotFound, UsageError
from storage.models import Device, Officer, now_utc


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
            if db.get(Officer, officer_no) is None:
                raise NotFound(f"no officer {officer_no}; add the officer first")
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

    def add_officer(self, officer: Officer, *, by: str) -> Officer:
        _given(by=by, officer=officer.officer_no, name=officer.name)
        with self.catalog.transaction(f"add officer {officer.officer_no}") as db:
            db.merge(officer)
            self.catalog.append_event(db, "officer", officer.officer_no, {
                "by": by, "name": officer.name, "unit_no": officer.unit_no,
                "unit_name": officer.unit_name, "role": officer.role})
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
