"""The one interface every link adapter implements.

Every link carries PSEM services: C12.22 over TCP, UDP and MQTT carry them inside EPSEM; the Modbus
adapter translates them onto the meter's register map (and answers ``SNS`` for what the map cannot
express); the optical port carries them in C12.18 packets. Above the links, the gateway's meter
client (``amidcc.gateway.meters``) encodes and decodes PSEM and never asks which link it uses.

A link's ``request`` returns a Deferred that fires with one PSEM response (bytes) per service sent,
in order, or fails with one of the errors below. Every pending request fails with
:class:`LinkDown` when its link drops.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = [
    "LinkDown",
    "LinkError",
    "LinkKind",
    "MeterAddress",
    "MeterLink",
    "RequestTimeout",
    "Throttled",
]


class LinkKind(enum.StrEnum):
    """How a meter is reached; also the ``link`` label of the gateway's metrics."""

    C1222_TCP = "c1222-tcp"
    C1222_UDP = "c1222-udp"
    MQTT = "mqtt"
    MODBUS = "modbus"
    OPTICAL = "optical"


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterAddress:
    """Where a meter is, as the link that reaches it needs to know."""

    meter_id: str
    """The head-end's id of the meter (unique)."""
    ap_title: str
    """The meter's C12.22 AP title in dotted text, relative ones with a leading dot (``.2.7.1``)."""
    link: LinkKind
    """The link kind that reaches it now."""
    route: tuple[str, ...] = ()
    """Collector, cell and relay ids from the head-end side down to the meter (may be empty)."""
    unit_id: int | None = None
    """Modbus unit id behind a Modbus collector; None on other links."""


class LinkError(Exception):
    """A request could not be carried to the meter and back."""


class LinkDown(LinkError):
    """The link (connection, broker session, Modbus client) is down; pending requests fail."""


class RequestTimeout(LinkError):
    """No response arrived within the request's timeout."""


class Throttled(LinkError):
    """The request was refused by the in-flight or connection-rate limits."""


class MeterLink(Protocol):
    """What the meter client needs from a link adapter."""

    kind: LinkKind

    def request(
        self, address: MeterAddress, services: Sequence[bytes], *, timeout: float
    ) -> Deferred[list[bytes]]:
        """Send PSEM services to one meter; fire with one PSEM response per service."""
        ...

    def is_reachable(self, address: MeterAddress) -> bool:
        """Whether the link currently has a way to the meter (connected, registered, polled)."""
        ...
