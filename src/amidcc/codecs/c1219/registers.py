"""Decade 2: ST21 ACT_REGS_TBL, ST22 DATA_SELECTION_TBL, ST23 CURRENT_REG_DATA_TBL.

protocol-facts.md 4.7 [M], checked against the C12.19 type definitions quoted in S10's header
(``DATA_SELECTION_RCD``, ``REGISTER_DATA_RCD``): ST22 is SUMMATION_SELECT, DEMAND_SELECT,
MIN_OR_MAX_FLAGS, COINCIDENT_SELECT, COIN_DEMAND_ASSOC; ST23 is [NBR_DEMAND_RESETS] + a total data
block + NBR_TIERS tier blocks, each block SUMMATIONS (NI_FMAT1), DEMANDS and COINCIDENTS (NI_FMAT2).
The optional demand fields (EVENT_TIME, CUM_DEMAND, CONT_CUM_DEMAND) follow the ST21 flags; the fact
sheet rates them [L], S10's quotation agrees with this reading.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .context import TableContext
from .fields import Layout, array, flags, ni, record, set_field, stime, u8
from .model import TableModel
from .numeric import NiValue
from .structs import StructCodec, frozen, ni_code, prefix, time_code, time_decoder, time_encoder

__all__ = [
    "ST21",
    "ST22",
    "ST23",
    "ActRegs",
    "CurrentRegData",
    "DataBlock",
    "DataSelection",
    "DemandRecord",
    "RegFunc1Flag",
    "RegFunc2Flag",
]


class RegFunc1Flag(enum.IntFlag):
    """ST21 REG_FUNC1_FLAGS."""

    SEASON_INFO_FIELD = 0x01
    DATE_TIME_FIELD = 0x02  #: demands carry EVENT_TIME
    DEMAND_RESET_CTR = 0x04  #: ST23 starts with NBR_DEMAND_RESETS
    DEMAND_RESET_LOCK = 0x08
    CUM_DEMAND = 0x10  #: demands carry CUM_DEMAND
    CONT_CUM_DEMAND = 0x20  #: demands carry CONT_CUM_DEMAND
    TIME_REMAINING = 0x40


class RegFunc2Flag(enum.IntFlag):
    """ST21 REG_FUNC2_FLAGS (bits 4-5 are the SELF_READ_DEMAND_RESET field, kept as bits)."""

    SELF_READ_INHIBIT_OVERFLOW = 0x01
    SELF_READ_SEQ_NBR = 0x02
    DAILY_SELF_READ = 0x04
    WEEKLY_SELF_READ = 0x08
    SELF_READ_DEMAND_RESET_LO = 0x10
    SELF_READ_DEMAND_RESET_HI = 0x20


@dataclass(frozen=True, kw_only=True)
class ActRegs:
    """ST21 ACT_REGS_TBL (same layout as ST20), 10 bytes."""

    reg_func1_flags: RegFunc1Flag = RegFunc1Flag(0)
    """REG_FUNC1_FLAGS."""
    reg_func2_flags: RegFunc2Flag = RegFunc2Flag(0)
    """REG_FUNC2_FLAGS."""
    nbr_self_reads: int = 0
    """NBR_SELF_READS."""
    nbr_summations: int = 0
    """NBR_SUMMATIONS per data block."""
    nbr_demands: int = 0
    """NBR_DEMANDS per data block."""
    nbr_coin_values: int = 0
    """NBR_COIN_VALUES per data block."""
    nbr_occur: int = 0
    """NBR_OCCUR: occurrences kept per demand."""
    nbr_tiers: int = 0
    """NBR_TIERS: tier data blocks after the total block."""
    nbr_present_demands: int = 0
    """NBR_PRESENT_DEMANDS."""
    nbr_present_values: int = 0
    """NBR_PRESENT_VALUES."""


_ST21_BYTES = (
    "nbr_self_reads",
    "nbr_summations",
    "nbr_demands",
    "nbr_coin_values",
    "nbr_occur",
    "nbr_tiers",
    "nbr_present_demands",
    "nbr_present_values",
)


def _st21_layout(ctx: TableContext) -> Layout:
    return record(
        ActRegs,
        ("reg_func1_flags", flags(RegFunc1Flag, u8())),
        ("reg_func2_flags", flags(RegFunc2Flag, u8())),
        *((name, u8()) for name in _ST21_BYTES),
    )


ST21: TableModel[ActRegs] = TableModel(21, "ACT_REGS_TBL", _st21_layout, ActRegs)


@dataclass(frozen=True, kw_only=True)
class DataSelection:
    """ST22 DATA_SELECTION_TBL: ST16 source indexes feeding ST23 [L]."""

    summation_select: tuple[int, ...] = ()
    """SUMMATION_SELECT: one source index per summation."""
    demand_select: tuple[int, ...] = ()
    """DEMAND_SELECT: one source index per demand."""
    min_or_max_flags: frozenset[int] = frozenset()
    """MIN_OR_MAX_FLAGS: demand n is a maximum when n is a member, else a minimum."""
    coincident_select: tuple[int, ...] = ()
    """COINCIDENT_SELECT: one source index per coincident value."""
    coin_demand_assoc: tuple[int, ...] = ()
    """COIN_DEMAND_ASSOC: for each coincident value, the index into DEMAND_SELECT it belongs to."""


def _st22_layout(ctx: TableContext) -> Layout:
    regs = ctx.require(ctx.st21, "ST21", "ST22")
    return record(
        DataSelection,
        ("summation_select", array(regs.nbr_summations, u8())),
        ("demand_select", array(regs.nbr_demands, u8())),
        ("min_or_max_flags", set_field((regs.nbr_demands + 7) // 8)),
        ("coincident_select", array(regs.nbr_coin_values, u8())),
        ("coin_demand_assoc", array(regs.nbr_coin_values, u8())),
    )


ST22: TableModel[DataSelection] = TableModel(22, "DATA_SELECTION_TBL", _st22_layout, DataSelection)


@dataclass(frozen=True, kw_only=True)
class DemandRecord:
    """DEMANDS_RCD: one demand register with its NBR_OCCUR occurrences."""

    event_times: tuple[datetime | None, ...] | None = None
    """EVENT_TIME per occurrence (STIME_DATE), present with DATE_TIME_FIELD."""
    cum_demand: NiValue | None = None
    """CUM_DEMAND (NI_FMAT1), present with CUM_DEMAND."""
    cont_cum_demand: NiValue | None = None
    """CONT_CUM_DEMAND (NI_FMAT1), present with CONT_CUM_DEMAND."""
    demands: tuple[NiValue, ...] = ()
    """DEMAND per occurrence (NI_FMAT2)."""


@dataclass(frozen=True, kw_only=True)
class DataBlock:
    """DATA_BLK_RCD: the total block or one tier block."""

    summations: tuple[NiValue, ...] = ()
    """SUMMATIONS (NI_FMAT1), one per ST21 NBR_SUMMATIONS."""
    demands: tuple[DemandRecord, ...] = ()
    """DEMANDS, one per ST21 NBR_DEMANDS."""
    coincidents: tuple[tuple[NiValue, ...], ...] = ()
    """COINCIDENTS: per coincident value, NBR_OCCUR values (NI_FMAT2)."""


@dataclass(frozen=True, kw_only=True)
class CurrentRegData:
    """ST23 CURRENT_REG_DATA_TBL."""

    nbr_demand_resets: int | None = None
    """NBR_DEMAND_RESETS, present with DEMAND_RESET_CTR."""
    tot_data_block: DataBlock = DataBlock()
    """TOT_DATA_BLOCK."""
    tier_data_blocks: tuple[DataBlock, ...] = ()
    """TIER_DATA_BLOCK per tier."""


def _demand_layout(ctx: TableContext, regs: ActRegs) -> Layout:
    f1 = regs.reg_func1_flags
    fields: list[tuple[str, Layout]] = []
    if f1 & RegFunc1Flag.DATE_TIME_FIELD:
        fields.append(("event_times", array(regs.nbr_occur, stime(ctx))))
    if f1 & RegFunc1Flag.CUM_DEMAND:
        fields.append(("cum_demand", ni(1, ctx)))
    if f1 & RegFunc1Flag.CONT_CUM_DEMAND:
        fields.append(("cont_cum_demand", ni(1, ctx)))
    fields.append(("demands", array(regs.nbr_occur, ni(2, ctx))))
    return record(DemandRecord, *fields)


def _block_layout(ctx: TableContext, regs: ActRegs) -> Layout:
    return record(
        DataBlock,
        ("summations", array(regs.nbr_summations, ni(1, ctx))),
        ("demands", array(regs.nbr_demands, _demand_layout(ctx, regs))),
        ("coincidents", array(regs.nbr_coin_values, array(regs.nbr_occur, ni(2, ctx)))),
    )


def _st23_layout(ctx: TableContext) -> Layout:
    regs = ctx.require(ctx.st21, "ST21", "ST23")
    block = _block_layout(ctx, regs)
    fields: list[tuple[str, Layout]] = []
    if regs.reg_func1_flags & RegFunc1Flag.DEMAND_RESET_CTR:
        fields.append(("nbr_demand_resets", u8()))
    fields.append(("tot_data_block", block))
    fields.append(("tier_data_blocks", array(regs.nbr_tiers, block)))
    return record(CurrentRegData, *fields)


class _St23Struct:
    """ST23 with one ``Struct`` for a context (see :mod:`.structs`): the values come out flat, in
    wire order, and are grouped into the records here."""

    def __init__(self, ctx: TableContext, regs: ActRegs, ni1: str, ni2: str) -> None:
        f1 = regs.reg_func1_flags
        self.resets = bool(f1 & RegFunc1Flag.DEMAND_RESET_CTR)
        self.times = bool(f1 & RegFunc1Flag.DATE_TIME_FIELD)
        self.cum = bool(f1 & RegFunc1Flag.CUM_DEMAND)
        self.cont = bool(f1 & RegFunc1Flag.CONT_CUM_DEMAND)
        self.regs = regs
        occur = regs.nbr_occur
        demand = (time_code(ctx, long=False) * occur if self.times else "") + (
            ni1 * (self.cum + self.cont) + ni2 * occur
        )
        block = ni1 * regs.nbr_summations + demand * regs.nbr_demands
        block += ni2 * occur * regs.nbr_coin_values
        resets = "B" if self.resets else ""
        self.packer = struct.Struct(prefix(ctx) + resets + block * (1 + regs.nbr_tiers))
        self.decode_time = time_decoder(ctx, long=False)
        self.encode_time = time_encoder(ctx, long=False)

    def parse(self, data: bytes) -> CurrentRegData:
        flat = self.packer.unpack(data)
        at = 1 if self.resets else 0
        blocks = []
        for _ in range(1 + self.regs.nbr_tiers):
            block, at = self._parse_block(flat, at)
            blocks.append(block)
        return frozen(
            CurrentRegData,
            {
                "nbr_demand_resets": flat[0] if self.resets else None,
                "tot_data_block": blocks[0], "tier_data_blocks": tuple(blocks[1:]),
            },
        )  # fmt: skip

    def _parse_block(self, flat: tuple[Any, ...], at: int) -> tuple[DataBlock, int]:
        regs, occur = self.regs, self.regs.nbr_occur
        summations = flat[at : at + regs.nbr_summations]
        at += regs.nbr_summations
        demands = []
        for _ in range(regs.nbr_demands):
            times = None
            if self.times:
                times = tuple(self.decode_time(raw) for raw in flat[at : at + occur])
                at += occur
            cum = flat[at] if self.cum else None
            at += self.cum
            cont = flat[at] if self.cont else None
            at += self.cont
            values = {"event_times": times, "cum_demand": cum, "cont_cum_demand": cont}
            values["demands"] = flat[at : at + occur]
            demands.append(frozen(DemandRecord, values))
            at += occur
        coincidents = tuple(
            flat[at + i * occur : at + (i + 1) * occur] for i in range(regs.nbr_coin_values)
        )
        at += occur * regs.nbr_coin_values
        values = {"summations": summations, "demands": tuple(demands), "coincidents": coincidents}
        return frozen(DataBlock, values), at

    def build(self, value: CurrentRegData) -> bytes:
        if type(value) is not CurrentRegData:
            raise TypeError("construct decides")
        if self.resets:
            flat: list[Any] = [value.nbr_demand_resets]
        elif value.nbr_demand_resets is None:
            flat = []
        else:
            raise ValueError("no room for NBR_DEMAND_RESETS")
        for block in (value.tot_data_block, *_sized(value.tier_data_blocks, self.regs.nbr_tiers)):
            self._build_block(block, flat)
        return self.packer.pack(*flat)

    def _build_block(self, block: DataBlock, flat: list[Any]) -> None:
        regs, occur = self.regs, self.regs.nbr_occur
        if type(block) is not DataBlock:
            raise TypeError("construct decides")
        flat.extend(_sized(block.summations, regs.nbr_summations))
        for demand in _sized(block.demands, regs.nbr_demands):
            if type(demand) is not DemandRecord:
                raise TypeError("construct decides")
            if self.times:
                flat.extend(self.encode_time(t) for t in _sized(demand.event_times, occur))
            elif demand.event_times is not None:
                raise ValueError("no room for EVENT_TIME")
            for present, extra in (
                (self.cum, demand.cum_demand),
                (self.cont, demand.cont_cum_demand),
            ):
                if present:
                    flat.append(extra)
                elif extra is not None:
                    raise ValueError("no room for CUM_DEMAND / CONT_CUM_DEMAND")
            flat.extend(_sized(demand.demands, occur))
        for values in _sized(block.coincidents, regs.nbr_coin_values):
            flat.extend(_sized(values, occur))


def _sized(values: Sequence[Any] | None, count: int) -> Sequence[Any]:
    """``values`` when it holds exactly ``count`` items (else construct decides)."""
    if values is None or len(values) != count:
        raise ValueError("construct decides")
    return values


def _st23_structs(ctx: TableContext) -> StructCodec[CurrentRegData] | None:
    regs, ni1, ni2 = ctx.st21, ni_code(1, ctx), ni_code(2, ctx)
    if regs is None or ni1 is None or ni2 is None:
        return None
    codec = _St23Struct(ctx, regs, ni1, ni2)
    return StructCodec(codec.parse, codec.build)


ST23: TableModel[CurrentRegData] = TableModel(
    23, "CURRENT_REG_DATA_TBL", _st23_layout, CurrentRegData, structs=_st23_structs
)
