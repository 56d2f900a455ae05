"""Frame-level tracing per meter: one log line per C12.22 APDU to or from the meters being traced.

The first thing a field engineer asks for is the bytes. :class:`FrameTracer` is a frame tap
(:data:`~amidcc.gateway.links.c1222.FrameTap`) on the C12.22 links (TCP, UDP, and the MQTT link,
which carries C12.22 through the same :class:`~amidcc.gateway.links.c1222.C1222Link`). For each APDU
sent to or received from a traced meter it emits one ``twisted.logger`` event in the
``amidcc.gateway.trace`` namespace with named fields: ``direction``, ``peer``, ``meter``,
``ap_title``, ``invocation_id`` (A8), ``responding_to`` (A4, in a response), ``security_mode``,
``key_id``, ``nbytes``, ``hex`` (cut after ``limit`` bytes, ``truncated`` says so) and ``error``
when the APDU does not decode.

Targets are AP titles, meter ids, or ``"*"`` for every meter (``[logging] trace_meters``). They can
be changed while the gateway runs (:meth:`FrameTracer.set_targets`, :meth:`FrameTracer.trace`,
:meth:`FrameTracer.untrace`, or :func:`set_trace_meters` on the gateway). A message that cannot be
attributed to a meter (an undecodable APDU) is traced only under ``"*"``.

Trace lines are logged at ``info`` by default, so switching a meter on needs no log-level change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.logger import Logger, LogLevel

from amidcc.codecs.c1222 import ApTitle, decode_apdu
from amidcc.codecs.c1222.epsem import security_mode_of
from amidcc.codecs.errors import CodecError

__all__ = [
    "ALL",
    "DEFAULT_HEX_LIMIT",
    "FrameTracer",
    "normalise_target",
    "set_trace_meters",
]

log = Logger(namespace="amidcc.gateway.trace")

#: The target that traces every meter.
ALL = "*"
#: Bytes of an APDU shown in hex before the line is cut.
DEFAULT_HEX_LIMIT = 512

_FORMAT = (
    "trace {direction} {meter} ({ap_title}) {peer}: id {invocation_id}{answer} {security_mode} "
    "{nbytes} B {hex}"
)


def normalise_target(target: str) -> str:
    """``"*"`` and meter ids (no dot) as given; AP titles in the links' dotted form.

    Raises ValueError for a dotted target that is not an AP title.
    """
    text = target.strip()
    if text == ALL or (text and "." not in text):
        return text
    try:
        return str(ApTitle.parse(text))
    except CodecError as exc:
        raise ValueError(f"not an AP title, meter id or '*': {target!r} ({exc})") from None


class FrameTracer:
    """A frame tap that logs the APDUs of the traced meters (see the module docstring).

    ``meter_of(ap_title)`` names the meter holding an AP title (None when unknown); the gateway
    passes its registry's lookup.
    """

    def __init__(
        self,
        targets: Iterable[str] = (),
        *,
        meter_of: Callable[[str], str | None] | None = None,
        limit: int = DEFAULT_HEX_LIMIT,
        level: LogLevel = LogLevel.info,
        logger: Logger | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"hex limit {limit} must be at least 1")
        self.limit = limit
        """Bytes shown in hex; the rest is cut."""
        self.level = level
        """Log level of trace lines."""
        self.traced = 0
        """Trace lines emitted so far."""
        self._meter_of = meter_of
        self._log = logger if logger is not None else log
        self._targets: frozenset[str] = frozenset()
        self.set_targets(targets)

    # -- runtime switches ---------------------------------------------------------------------

    @property
    def targets(self) -> frozenset[str]:
        """What is traced now: AP titles, meter ids, ``"*"``."""
        return self._targets

    def set_targets(self, targets: Iterable[str]) -> frozenset[str]:
        """Trace exactly ``targets`` from now on (empty: nothing); returns them, normalised."""
        self._targets = frozenset(normalise_target(t) for t in targets)
        self._log.info("frame tracing: {targets}", targets=sorted(self._targets) or "off")
        return self._targets

    def trace(self, target: str) -> frozenset[str]:
        """Start tracing one meter (AP title or meter id), or every meter with ``"*"``."""
        return self.set_targets(self._targets | {target})

    def untrace(self, target: str) -> frozenset[str]:
        """Stop tracing one target (``"*"`` stops the catch-all, not the named meters)."""
        return self.set_targets(self._targets - {normalise_target(target)})

    # -- the tap ------------------------------------------------------------------------------

    def __call__(
        self, direction: str, channel: Any, ap_title: str | None, apdu: bytes, now: float
    ) -> None:
        """The frame tap: log ``apdu`` when its meter is traced (channel closings are not)."""
        targets = self._targets
        if not targets or direction == "closed":
            return
        meter = self._match(targets, ap_title)
        if meter is None:
            return
        fields = describe_apdu(apdu, self.limit)
        self.traced += 1
        self._log.emit(
            self.level, _FORMAT, direction=direction, peer=getattr(channel, "peer", "?"),
            meter=meter, ap_title=ap_title, time=now, **fields,
        )  # fmt: skip

    def _match(self, targets: frozenset[str], ap_title: str | None) -> str | None:
        """The meter's name when it is traced (its id if known, else its title), else None."""
        if ap_title is None:
            return "?" if ALL in targets else None
        meter_id = self._meter_of(ap_title) if self._meter_of is not None else None
        if ALL in targets or ap_title in targets or (meter_id is not None and meter_id in targets):
            return meter_id if meter_id is not None else ap_title
        return None


def describe_apdu(apdu: bytes, limit: int) -> dict[str, Any]:
    """The trace fields of one APDU: ids, security, size and (cut) hex; ``error`` if undecodable."""
    fields: dict[str, Any] = {
        "invocation_id": None, "responding_to": None, "answer": "", "security_mode": "?",
        "key_id": None, "nbytes": len(apdu), "truncated": len(apdu) > limit, "error": None,
    }  # fmt: skip
    shown = apdu[:limit].hex()
    fields["hex"] = f"{shown}... (+{len(apdu) - limit} B)" if len(apdu) > limit else shown
    try:
        decoded = decode_apdu(apdu)
        fields["invocation_id"] = decoded.calling_ap_invocation_id
        fields["responding_to"] = decoded.called_ap_invocation_id
        if decoded.called_ap_invocation_id is not None:
            fields["answer"] = f" answers {decoded.called_ap_invocation_id}"
        auth = decoded.calling_authentication
        fields["key_id"] = auth.key_id if auth is not None else None
        epsem = decoded.user_information.epsem
        mode = security_mode_of(epsem[0]) if epsem else None
        fields["security_mode"] = mode.name.lower() if mode is not None else "?"
    except CodecError as exc:
        fields["error"] = str(exc)
        fields["security_mode"] = f"undecodable ({exc})"
    return fields


def set_trace_meters(gateway: Any, targets: Iterable[str]) -> frozenset[str]:
    """The operator's switch: trace ``targets`` on a running gateway (``stores["tracer"]``).

    Returns what is traced now; raises LookupError when the gateway has no tracer (see
    :func:`~amidcc.gateway.capture.attach_capture`) and ValueError for a bad target.
    """
    tracer = gateway.stores.get("tracer")
    if not isinstance(tracer, FrameTracer):
        raise LookupError("this gateway has no frame tracer (attach_capture was not called)")
    return tracer.set_targets(targets)
