"""Who a simulated meter is: the nameplate, the C12.22 AP title, and the head-end's records.

Everything a head-end learns from ST1 (manufacturer, model, versions, serial), ST5 (device id), the
C12.22 AP title and the ED class comes from one frozen :class:`MeterIdentity`. The ``seed`` drives
everything deterministic about the meter (its load curve, its history, its schedules' phases).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from amidcc.codecs.ber import format_oid

__all__ = ["MeterIdentity", "derive_seed"]


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any printable parts (not Python's salted ``hash``)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterIdentity:
    """The nameplate and records of one simulated meter."""

    manufacturer: str
    """ST1 MANUFACTURER: 4 characters, space padded (e.g. ``"AMDC"``); also the default ED class."""
    model: str
    """ST1 ED_MODEL: up to 8 characters."""
    serial: str
    """ST1 MFG_SERIAL_NUMBER: up to 16 characters; unique within a fleet."""
    hw_version: int = 1
    """ST1 HW_VERSION_NUMBER (0-255)."""
    hw_revision: int = 0
    """ST1 HW_REVISION_NUMBER (0-255)."""
    fw_version: int = 1
    """ST1 FW_VERSION_NUMBER (0-255)."""
    fw_revision: int = 0
    """ST1 FW_REVISION_NUMBER (0-255)."""
    lot: str = "LOT-0001"
    """Manufacturing lot (the MMS checks a lot's other meters for the same anomaly, scenario S6)."""
    meter_type: str = "residential-1ph"
    """Meter type / form, for the head-end's per-type event statistics (FR12)."""
    comm_module: str = "rf-mesh"
    """Communication module fitted (e.g. ``"rf-mesh"``, ``"cellular"``, ``"plc"``, ``"ethernet"``)."""
    ap_title: tuple[int, ...] = (2, 7, 1)
    """C12.22 AP title arcs."""
    ap_title_relative: bool = True
    """True when ``ap_title`` is relative to the C12.22 base OID (the usual case)."""
    account: str = ""
    """Billing account the meter is installed for (FR10)."""
    premise: str = ""
    """Premise (service address id) where it is installed."""
    device_id: str = ""
    """ST5 IDENTIFICATION (the utility's meter number); defaults to the serial when empty."""
    seed: int = 0
    """Drives the load curve, history and schedule phases. Same seed, same meter."""

    def __post_init__(self) -> None:
        if len(self.manufacturer) > 4 or not self.manufacturer.isascii():
            raise ValueError(f"manufacturer must be at most 4 ASCII characters: {self.manufacturer!r}")
        if len(self.model) > 8 or len(self.serial) > 16 or len(self.device_id) > 20:
            raise ValueError("model <= 8, serial <= 16 and device_id <= 20 characters")
        for name in ("hw_version", "hw_revision", "fw_version", "fw_revision"):
            if not 0 <= getattr(self, name) <= 255:
                raise ValueError(f"{name} must fit one byte")
        if not self.ap_title:
            raise ValueError("ap_title needs at least one arc")

    @property
    def meter_id(self) -> str:
        """The id a head-end uses for the meter: the serial."""
        return self.serial

    @property
    def ed_class(self) -> bytes:
        """The 4-byte C12.22 ED class: the manufacturer code space padded (C12.19-1997 form)."""
        return self.manufacturer.ljust(4).encode("ascii")

    @property
    def ap_title_text(self) -> str:
        """Dotted AP title, relative ones with a leading dot (``.2.7.1``)."""
        return format_oid(self.ap_title, relative=self.ap_title_relative)

    @property
    def ident(self) -> str:
        """ST5 IDENTIFICATION before the head-end writes its own."""
        return self.device_id or self.serial
