"""Short service names for logs and metrics labels ("Full Read", "Partial Read Offset", ...)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..codes import ResponseCode
from . import requests as rq
from . import responses as rs

__all__ = ["REQUEST_NAMES", "service_name"]


def _request_names() -> dict[int, str]:
    names = {
        0x20: "Identify",
        0x21: "Terminate",
        0x22: "Disconnect",
        0x24: "Deregister",
        0x25: "Resolve",
        0x26: "Trace",
        0x27: "Register",
        0x30: "Full Read",
        0x3E: "Default Read",
        0x3F: "Partial Read Offset",
        0x40: "Full Write",
        0x4F: "Partial Write Offset",
        0x50: "Logon",
        0x51: "Security",
        0x52: "Logoff",
        0x53: "Authenticate",
        0x70: "Wait",
        0x71: "Timing Setup",
    }
    for n in range(1, 10):
        names[0x30 + n] = "Partial Read Index"
        names[0x40 + n] = "Partial Write Index"
    for n in range(12):
        names[0x60 + n] = "Negotiate"
    return dict(sorted(names.items()))


#: Request code -> short service name (protocol-facts.md 2.1).
REQUEST_NAMES: Mapping[int, str] = MappingProxyType(_request_names())

_TYPE_NAMES: dict[type, str] = {
    rq.Identify: "Identify",
    rq.Terminate: "Terminate",
    rq.Disconnect: "Disconnect",
    rq.FullRead: "Full Read",
    rq.PartialReadIndex: "Partial Read Index",
    rq.DefaultRead: "Default Read",
    rq.PartialReadOffset: "Partial Read Offset",
    rq.FullWrite: "Full Write",
    rq.PartialWriteIndex: "Partial Write Index",
    rq.PartialWriteOffset: "Partial Write Offset",
    rq.Logon: "Logon",
    rq.Security: "Security",
    rq.Logoff: "Logoff",
    rq.Authenticate: "Authenticate",
    rq.Negotiate: "Negotiate",
    rq.Wait: "Wait",
    rq.TimingSetup: "Timing Setup",
    rq.Register: "Register",
    rq.Deregister: "Deregister",
    rq.Resolve: "Resolve",
    rq.Trace: "Trace",
    rs.OkResponse: "ok",
    rs.IdentifyResponse: "Identify Response",
    rs.ReadResponse: "Read Response",
    rs.LogonResponse: "Logon Response",
    rs.NegotiateResponse: "Negotiate Response",
    rs.RegisterResponse: "Register Response",
    rs.ResolveResponse: "Resolve Response",
    rs.TraceResponse: "Trace Response",
    rs.RawResponse: "Raw Response",
}


def service_name(message: rq.Request | rs.Response) -> str:
    """Short name of a request or response; a nok is named by its code (``"nok isc"``)."""
    if isinstance(message, rs.NokResponse):
        try:
            return f"nok {ResponseCode(message.code).name.lower()}"
        except ValueError:
            return f"nok {int(message.code):#04x}"
    try:
        return _TYPE_NAMES[type(message)]
    except KeyError:
        return type(message).__name__
