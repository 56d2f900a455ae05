"""What a table's layout depends on: ST0's format controls plus the decoded dimension tables.

C12.19 tables are not self-describing. ST23's size follows ST21, ST62-ST67 follow ST61 (and ST0's
list of tables used), ST72-ST76 follow ST71 (and ST0). A :class:`TableContext` carries those decoded
tables, plus amidcc switches for the points the public sources do not settle, and every table model
takes one. Contexts are frozen and hashable, so layouts built from them are cached.

Typical use::

    ctx = TableContext()
    st0 = decode_table(0, st0_bytes, ctx)
    ctx = ctx.with_table(0, st0)          # now carries ST0's format controls
    ctx = ctx.with_table(21, decode_table(21, st21_bytes, ctx))
    regs = decode_table(23, st23_bytes, ctx)
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import LocalProtocolError
from .formats import FormatControl

if TYPE_CHECKING:
    from .general import GenConfig
    from .load_profile import ActLp, LpCtrl
    from .logs import ActLog
    from .registers import ActRegs

__all__ = ["DEFAULT_CONTEXT", "LogCtrlLayout", "TableContext"]

_T = TypeVar("_T")

#: Table number -> the context field that stores it.
_DIMENSION_FIELDS = {0: "st0", 21: "st21", 61: "st61", 62: "st62", 71: "st71"}


class LogCtrlLayout(enum.Enum):
    """ST75 EVENT_LOG_CTRL_TBL layout [L]: the fact sheet leaves it open (open item 7)."""

    SIX_SETS = "six_sets"
    """Same as ST73: std/mfg events, std/mfg tables, std/mfg procedures monitored (a firmware header
    found while writing this labels one struct "HISTORY_LOG_CTRL_TBL + EVENT_LOG_CTRL_TBL")."""
    EVENTS_ONLY = "events_only"
    """Only the std and mfg event sets."""


@dataclass(frozen=True, kw_only=True)
class TableContext:
    """Format controls, decoded dimension tables and interpretation switches for table models."""

    format: FormatControl = FormatControl()
    """ST0's format controls (byte order, time format, NI formats...)."""
    st0: GenConfig | None = None
    """ST0 GEN_CONFIG_TBL: set sizes, MAX_PROC_PARM_LENGTH, tables used."""
    st21: ActRegs | None = None
    """ST21 ACT_REGS_TBL: dimensions of ST22 and ST23."""
    st61: ActLp | None = None
    """ST61 ACT_LP_TBL: dimensions and flags of ST62-ST67."""
    st62: LpCtrl | None = None
    """ST62 LP_CTRL_TBL: interval data format of ST64-ST67."""
    st71: ActLog | None = None
    """ST71 ACT_LOG_TBL: dimensions and flags of ST72-ST76."""
    year_pivot: int = 90
    """Two-digit years at or above this are 19xx, below it 20xx (termineter's rule [M])."""
    lp_sets: frozenset[int] | None = None
    """Load-profile sets (1-4) present. None: from ST0 STD_TBLS_USED (ST64-ST67), or {1} without ST0."""
    fixed_bcd_digits: bool = True
    """FIXED_BCDn counts digits, so FIXED_BCD6 is 3 octets (S10) [L]. False: n octets."""
    log_flags_octets: int = 1
    """Size of ST71 LOG_FLAGS: 1 (termineter, S12, a firmware header) or 2 (S11)."""
    st71_extended: bool | None = None
    """ST71 EXT_LOG_FLAGS + NBR_PROGRAM_TABLES present. None: when ST0 STD_VERSION_NO >= 2."""
    st75_layout: LogCtrlLayout = LogCtrlLayout.SIX_SETS
    """ST75 layout [L]."""
    st6_utility_div_octets: int = 20
    """Size of ST6 UTILITY_DIV: 20 (S11 and a firmware header [M]) or 16 (another firmware)."""
    st6_mfg_octets: int = 0
    """Manufacturer bytes after ST6 MISC_ID (one firmware adds a firmware-load date)."""

    @classmethod
    def from_st0(cls, st0: GenConfig, **switches: Any) -> TableContext:
        """A context carrying ``st0`` and its format controls."""
        return cls(format=st0.format_control, st0=st0, **switches)

    def with_table(self, number: int, value: object) -> TableContext:
        """This context plus a decoded dimension table (0, 21, 61, 62 or 71).

        Other table numbers shape nothing and return the context unchanged, so a reader can feed
        every table it decodes through here.
        """
        field = _DIMENSION_FIELDS.get(number)
        if field is None:
            return self
        changes: dict[str, object] = {field: value}
        if number == 0:
            changes["format"] = value.format_control  # type: ignore[attr-defined]
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def lp_sets_present(self) -> frozenset[int]:
        """Load-profile set numbers (1-4) whose data tables (ST64-ST67) exist."""
        if self.lp_sets is not None:
            return self.lp_sets
        if self.st0 is None:
            return frozenset({1})
        return frozenset(n for n in range(1, 5) if 63 + n in self.st0.std_tbls_used)

    def require(self, value: _T | None, what: str, table: str) -> _T:
        """``value`` unless it is missing, in which case the caller forgot a dimension table."""
        if value is None:
            raise LocalProtocolError(f"{table} needs {what} in the TableContext")
        return value


#: A context with amidcc's defaults (little-endian, TM_FORMAT 2, INT64/INT32 NI formats).
DEFAULT_CONTEXT = TableContext()
