"""Table number -> model, and the generic ``decode_table`` / ``encode_table`` entry points.

Table ids follow the PSEM table-id word (protocol-facts.md 2.5 [M]), built and taken apart by
:mod:`amidcc.codecs.psem.primitives`: bits 0-10 the number, bit 11 (``0x0800``) a manufacturer
table (MTn = 2048 + n), bit 12 (``0x1000``) the pending version of the table. A pending table has
its table's layout, so the pending bit is ignored here. Manufacturer
models are added through :func:`amidcc.codecs.c1219.mfg.register_mfg_table`.
"""

from __future__ import annotations

from typing import Any

from ..errors import LocalProtocolError
from ..psem.primitives import decode_table_id
from ..psem.primitives import table_id as psem_table_id
from .clock import ST52
from .context import TableContext
from .general import ST0, ST1, ST3, ST5
from .load_profile import ST61, ST62, ST63, ST64, ST65, ST66, ST67
from .logs import ST71, ST72, ST73, ST74, ST75, ST76
from .model import TableModel
from .procedures import ST7, ST8
from .registers import ST21, ST22, ST23
from .utility_info import ST6

__all__ = [
    "MFG_FLAG",
    "PENDING_FLAG",
    "TABLES",
    "UnknownTableError",
    "decode_table",
    "encode_table",
    "split_table_id",
    "table_id",
    "table_model",
]

#: Table-id bit marking a manufacturer table.
MFG_FLAG = psem_table_id(0, mfg=True)
#: Table-id bit marking a pending table.
PENDING_FLAG = psem_table_id(0, pending=True)

#: Every modelled table, keyed by table number (2048 + n for MTn).
TABLES: dict[int, TableModel[Any]] = {
    model.number: model
    for model in (
        ST0, ST1, ST3, ST5, ST6, ST7, ST8, ST21, ST22, ST23, ST52,
        ST61, ST62, ST63, ST64, ST65, ST66, ST67,
        ST71, ST72, ST73, ST74, ST75, ST76,
    )
}  # fmt: skip


class UnknownTableError(LocalProtocolError):
    """No model is registered for this table number (a simulator answers such reads with ``sns``
    or ``iar``; a head-end keeps the raw bytes)."""

    def __init__(self, number: int) -> None:
        label = f"MT{number - MFG_FLAG}" if number >= MFG_FLAG else f"ST{number}"
        super().__init__(f"no C12.19 model for {label} (table id {number:#06x})")
        self.number = number


def table_id(number: int, *, mfg: bool = False, pending: bool = False) -> int:
    """The PSEM table-id word for table ``number`` (0-2047), as :func:`.psem.table_id` builds it."""
    return psem_table_id(number, mfg, pending)


def split_table_id(word: int) -> tuple[int, bool, bool]:
    """A PSEM table-id word to (number 0-2047, manufacturer, pending); bits 13-15 are ignored."""
    view = decode_table_id(word & 0xFFFF)
    return view.number, view.mfg, view.pending


def table_model(number: int) -> TableModel[Any]:
    """The model of table ``number`` (a table-id word; the pending bit is ignored)."""
    key = number & (0x07FF | MFG_FLAG)
    try:
        return TABLES[key]
    except KeyError:
        raise UnknownTableError(key) from None


def decode_table(number: int, data: bytes, ctx: TableContext | None = None) -> Any:
    """Decode a whole table. Unknown table: :class:`UnknownTableError`; bad data:
    :class:`~amidcc.codecs.errors.RemoteProtocolError`."""
    return table_model(number).parse(data, ctx)


def encode_table(number: int, value: Any, ctx: TableContext | None = None) -> bytes:
    """Encode a whole table. Unknown table: :class:`UnknownTableError`; a value that does not fit:
    :class:`~amidcc.codecs.errors.LocalProtocolError`."""
    return table_model(number).build(value, ctx)
