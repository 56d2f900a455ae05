"""The EPSEM envelope inside ``BE/28/81`` (protocol-facts.md 3.4).

``<control:1> [<ed_class:4>] { <service_len:BER> <service> }+ [<MAC:4>]``

The services stay raw bytes here (the PSEM codec parses them). A control byte without bit 7 is
malformed (S7 rejects it; every sample sets it). A trailing ``00`` length, mentioned by S7, is
accepted and dropped on receive and never sent. Reserved security mode or response control values
(3) are malformed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..ber import decode_length, encode_length
from ..errors import LocalProtocolError, RemoteProtocolError
from ._tlv import build_frozen
from .eax import MAC_SIZE

__all__ = [
    "ED_CLASS_SIZE",
    "Epsem",
    "ResponseControl",
    "SecurityMode",
    "control_byte",
    "decode_epsem",
    "decode_services",
    "encode_epsem",
    "encode_services",
    "security_mode_of",
]

#: Size of the ED class (ST0 DEVICE_CLASS).
ED_CLASS_SIZE = 4

_RESERVED = 0x80
_RECOVERY = 0x40
_PROXY = 0x20
_ED_CLASS = 0x10


class SecurityMode(enum.IntEnum):
    """EPSEM control bits 3-2."""

    CLEARTEXT = 0
    AUTHENTICATED = 1  #: cleartext + authentication (MAC)
    CIPHERTEXT = 2  #: ciphertext + authentication (EAX')


class ResponseControl(enum.IntEnum):
    """EPSEM control bits 1-0."""

    ALWAYS = 0  #: always respond
    ON_EXCEPTION = 1  #: respond only on exception
    NEVER = 2  #: never respond


# Members by value, without the cost of calling the enum class on every message.
_SECURITY_MODES = tuple(sorted(SecurityMode))
_RESPONSE_CONTROLS = tuple(sorted(ResponseControl))


@dataclass(frozen=True, kw_only=True)
class Epsem:
    """A plaintext EPSEM: control flags, optional ED class, raw services, MAC when secured."""

    services: tuple[bytes, ...]
    """The service bodies, each without its length prefix (request or response bytes)."""
    security_mode: SecurityMode = SecurityMode.CLEARTEXT
    """Security mode announced in the control byte."""
    response_control: ResponseControl = ResponseControl.ALWAYS
    """Response control announced in the control byte."""
    recovery: bool = False
    """RECOVERY_SESSION bit."""
    proxy: bool = False
    """PROXY_SERVICE_USED bit: the message went through a proxy relay."""
    ed_class: bytes | None = None
    """The 4-byte ED class; its presence sets ED_CLASS_INCLUDED."""
    mac: bytes | None = None
    """The 4-byte MAC of a secured EPSEM (None in cleartext, or before protection)."""

    @property
    def ed_class_included(self) -> bool:
        """The ED_CLASS_INCLUDED bit (derived from :attr:`ed_class`)."""
        return self.ed_class is not None


def control_byte(epsem: Epsem) -> int:
    """The EPSEM control byte of ``epsem`` (bit 7 always set)."""
    return (
        _RESERVED
        | (_RECOVERY if epsem.recovery else 0)
        | (_PROXY if epsem.proxy else 0)
        | (_ED_CLASS if epsem.ed_class is not None else 0)
        | (int(epsem.security_mode) << 2)
        | int(epsem.response_control)
    )


def encode_services(services: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Length-prefixed services, without a terminator."""
    if not services:
        raise LocalProtocolError("an EPSEM carries at least one service")
    out = bytearray()
    for service in services:
        if not service:
            raise LocalProtocolError(
                "an empty service cannot be sent (00 would read as a terminator)"
            )
        out += encode_length(len(service)) + service
    return bytes(out)


def encode_epsem(epsem: Epsem) -> bytes:
    """The EPSEM bytes: control, ED class, services, and the MAC when one is set."""
    head = bytes((control_byte(epsem),))
    if epsem.ed_class is not None:
        if len(epsem.ed_class) != ED_CLASS_SIZE:
            raise LocalProtocolError(f"ED class of {len(epsem.ed_class)} bytes (expected 4)")
        head += epsem.ed_class
    if epsem.mac is not None and len(epsem.mac) != MAC_SIZE:
        raise LocalProtocolError(f"MAC of {len(epsem.mac)} bytes (expected {MAC_SIZE})")
    return head + encode_services(epsem.services) + (epsem.mac or b"")


def decode_services(data: bytes) -> tuple[bytes, ...]:
    """Split length-prefixed services; one trailing ``00`` length is tolerated and dropped."""
    services: list[bytes] = []
    pos = 0
    while pos < len(data):
        if data[pos] < 0x80:  # decode_length's short form, inline
            length, start = data[pos], pos + 1
        else:
            decoded = decode_length(data, pos)
            if decoded is None:
                raise RemoteProtocolError("EPSEM service length truncated")
            length, start = decoded
        if length == 0:
            if start != len(data):
                raise RemoteProtocolError("empty EPSEM service before the end of the EPSEM")
            break
        if start + length > len(data):
            raise RemoteProtocolError(
                f"EPSEM service of {length} bytes overruns the EPSEM by {start + length - len(data)}"
            )
        services.append(data[start : start + length])
        pos = start + length
    if not services:
        raise RemoteProtocolError("EPSEM without any service")
    return tuple(services)


def security_mode_of(control: int) -> SecurityMode:
    """The security mode of a control byte; bit 7 clear or mode 3 is malformed."""
    if not control & _RESERVED:
        raise RemoteProtocolError(f"EPSEM control {control:#04x} without the mandatory bit 7")
    mode = (control >> 2) & 0x03
    if mode == 3:
        raise RemoteProtocolError("EPSEM security mode 3 is reserved")
    return _SECURITY_MODES[mode]


def decode_epsem(data: bytes | bytearray | memoryview) -> Epsem:
    """Decode a plaintext EPSEM (after decryption in mode 2); secured modes end with the MAC."""
    buf = bytes(data)
    if not buf:
        raise RemoteProtocolError("empty EPSEM")
    control = buf[0]
    mode = security_mode_of(control)
    if control & 0x03 == 3:
        raise RemoteProtocolError("EPSEM response control 3 is reserved")
    pos, end, mac = 1, len(buf), None
    if mode is not SecurityMode.CLEARTEXT:
        if end - pos < MAC_SIZE:
            raise RemoteProtocolError("secured EPSEM too short for its MAC")
        end -= MAC_SIZE
        mac = buf[end:]
    ed_class = None
    if control & _ED_CLASS:
        if end - pos < ED_CLASS_SIZE:
            raise RemoteProtocolError("EPSEM announces an ED class it does not carry")
        ed_class, pos = buf[pos : pos + ED_CLASS_SIZE], pos + ED_CLASS_SIZE
    return build_frozen(
        Epsem,
        {
            "services": decode_services(buf[pos:end]),
            "security_mode": mode,
            "response_control": _RESPONSE_CONTROLS[control & 0x03],
            "recovery": bool(control & _RECOVERY),
            "proxy": bool(control & _PROXY),
            "ed_class": ed_class,
            "mac": mac,
        },
    )
