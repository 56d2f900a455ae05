"""The RF-mesh-over-MQTT topic scheme, shared by the gateway and the simulated mesh.

An RF cell is a collector (the cell's root, which has the backhaul to the head-end) with relays
below it and meters below the relays. Every payload is one C12.22 APDU, exactly as it would cross
TCP port 1153, so captures of the broker traffic dissect the same way.

::

    {prefix}/rf/{cell}/up                    collector -> head-end   (APDUs from meters in the cell)
    {prefix}/rf/{cell}/down                  head-end -> collector   (APDUs for meters in the cell)
    {prefix}/rf/{cell}/node/{node}/up        a child -> its parent relay `node` (one RF hop up)
    {prefix}/rf/{cell}/node/{node}/down      a parent -> its child `node` (one RF hop down)
    {prefix}/rf/{cell}/status                retained JSON: the cell's relays, parents, alternates

The head-end only ever uses ``up`` (subscribed with a ``+`` for the cell) and ``down``; the ``node``
topics are the mesh's own hops, visible on the broker for analysts. The cell the head-end learns
from an uplink topic is where it sends the answer; the collector routes it down by called AP title.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PREFIX",
    "cell_from_uplink",
    "downlink",
    "node_down",
    "node_up",
    "status",
    "uplink",
    "uplink_filter",
]

DEFAULT_PREFIX = "amidcc"


def _check(part: str, what: str) -> str:
    if not part or any(c in part for c in "/+#"):
        raise ValueError(f"{what} {part!r} cannot be used in an MQTT topic")
    return part


def uplink(prefix: str, cell: str) -> str:
    return f"{prefix}/rf/{_check(cell, 'cell')}/up"


def downlink(prefix: str, cell: str) -> str:
    return f"{prefix}/rf/{_check(cell, 'cell')}/down"


def uplink_filter(prefix: str) -> str:
    """What the head-end subscribes to: every cell's uplink."""
    return f"{prefix}/rf/+/up"


def node_up(prefix: str, cell: str, node: str) -> str:
    return f"{prefix}/rf/{_check(cell, 'cell')}/node/{_check(node, 'node')}/up"


def node_down(prefix: str, cell: str, node: str) -> str:
    return f"{prefix}/rf/{_check(cell, 'cell')}/node/{_check(node, 'node')}/down"


def status(prefix: str, cell: str) -> str:
    return f"{prefix}/rf/{_check(cell, 'cell')}/status"


def cell_from_uplink(prefix: str, topic: str) -> str | None:
    """The cell of an uplink topic, or None if the topic is not an uplink under ``prefix``."""
    head = f"{prefix}/rf/"
    if not topic.startswith(head) or not topic.endswith("/up"):
        return None
    cell = topic[len(head) : -len("/up")]
    return cell if cell and "/" not in cell else None
