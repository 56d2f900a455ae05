"""Decade 0: ST0 GEN_CONFIG_TBL, ST1 GENERAL_MFG_ID_TBL, ST3 ED_MODE_STATUS_TBL, ST5 DEVICE_IDENT_TBL.

Layouts from protocol-facts.md 4.2-4.5 (S10, S11, S12, termineter agree [H]).
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass

from construct import Bytes, ExprAdapter, this

from .context import TableContext
from .fields import (
    Layout,
    bytes_field,
    chars,
    decode_set,
    encode_set,
    flags,
    ident,
    record,
    rest,
    set_octets,
    u8,
    uint,
)
from .formats import FormatControl, format_control_from_bytes, format_control_to_bytes
from .model import TableModel
from .structs import StructCodec, frozen, prefix

__all__ = [
    "ST0",
    "ST1",
    "ST3",
    "ST5",
    "DeviceIdent",
    "EdMode",
    "EdModeStatus",
    "EdStdStatus1",
    "GenConfig",
    "GeneralMfgId",
    "fit_set_dims",
]


# -- ST0 --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GenConfig:
    """ST0 GEN_CONFIG_TBL. The ``dim_*`` fields size the sets in octets (see :func:`fit_set_dims`)."""

    format_control: FormatControl = FormatControl()
    """FORMAT_CONTROL_1..3."""
    device_class: bytes = b"\x00\x00\x00\x00"
    """DEVICE_CLASS: 4 bytes, a BER relative OID (2008) or the manufacturer code (1997)."""
    nameplate_type: int = 2
    """NAMEPLATE_TYPE: 0 gas, 1 water, 2 electric."""
    default_set_used: int = 0
    """DEFAULT_SET_USED: 0 none, 1 simple register ... 4 simple profile recorder."""
    max_proc_parm_length: int = 0
    """MAX_PROC_PARM_LENGTH: size of ST7 PARM."""
    max_resp_data_len: int = 0
    """MAX_RESP_DATA_LEN: size of ST8 RESP_DATA."""
    std_version_no: int = 2
    """STD_VERSION_NO: 1 = C12.19-1997, 2 = C12.19-2008."""
    std_revision_no: int = 0
    """STD_REVISION_NO."""
    dim_std_tbls_used: int = 0
    """Octets in STD_TBLS_USED and STD_TBLS_WRITE."""
    dim_mfg_tbls_used: int = 0
    """Octets in MFG_TBLS_USED and MFG_TBLS_WRITE."""
    dim_std_proc_used: int = 0
    """Octets in STD_PROC_USED."""
    dim_mfg_proc_used: int = 0
    """Octets in MFG_PROC_USED."""
    dim_mfg_status_used: int = 0
    """Octets of ED_MFG_STATUS in ST3."""
    nbr_pending: int = 0
    """NBR_PENDING: pending status sets in ST4."""
    std_tbls_used: frozenset[int] = frozenset()
    """Standard tables implemented."""
    mfg_tbls_used: frozenset[int] = frozenset()
    """Manufacturer tables implemented."""
    std_proc_used: frozenset[int] = frozenset()
    """Standard procedures implemented."""
    mfg_proc_used: frozenset[int] = frozenset()
    """Manufacturer procedures implemented."""
    std_tbls_write: frozenset[int] = frozenset()
    """Standard tables that accept writes."""
    mfg_tbls_write: frozenset[int] = frozenset()
    """Manufacturer tables that accept writes."""


def fit_set_dims(cfg: GenConfig) -> GenConfig:
    """``cfg`` with each ``dim_*`` raised to the smallest size holding its sets."""
    return dataclasses.replace(
        cfg,
        dim_std_tbls_used=max(
            cfg.dim_std_tbls_used, set_octets(cfg.std_tbls_used), set_octets(cfg.std_tbls_write)
        ),
        dim_mfg_tbls_used=max(
            cfg.dim_mfg_tbls_used, set_octets(cfg.mfg_tbls_used), set_octets(cfg.mfg_tbls_write)
        ),
        dim_std_proc_used=max(cfg.dim_std_proc_used, set_octets(cfg.std_proc_used)),
        dim_mfg_proc_used=max(cfg.dim_mfg_proc_used, set_octets(cfg.mfg_proc_used)),
    )


def _sized_set(dim_name: str) -> Layout:
    """A SET whose size is an earlier ST0 field (ST0 describes itself)."""
    size = getattr(this, dim_name)
    return ExprAdapter(
        Bytes(size),
        lambda obj, _: decode_set(obj),
        lambda obj, c: encode_set(obj, size(c)),
    )


def _st0_layout(ctx: TableContext) -> Layout:
    return record(
        GenConfig,
        (
            "format_control",
            ExprAdapter(
                Bytes(3),
                lambda obj, _: format_control_from_bytes(obj),
                lambda obj, _: format_control_to_bytes(obj),
            ),
        ),
        ("device_class", bytes_field(4)),
        *((name, u8()) for name in _ST0_BYTES),
        ("std_tbls_used", _sized_set("dim_std_tbls_used")),
        ("mfg_tbls_used", _sized_set("dim_mfg_tbls_used")),
        ("std_proc_used", _sized_set("dim_std_proc_used")),
        ("mfg_proc_used", _sized_set("dim_mfg_proc_used")),
        ("std_tbls_write", _sized_set("dim_std_tbls_used")),
        ("mfg_tbls_write", _sized_set("dim_mfg_tbls_used")),
    )


_ST0_BYTES = (
    "nameplate_type",
    "default_set_used",
    "max_proc_parm_length",
    "max_resp_data_len",
    "std_version_no",
    "std_revision_no",
    "dim_std_tbls_used",
    "dim_mfg_tbls_used",
    "dim_std_proc_used",
    "dim_mfg_proc_used",
    "dim_mfg_status_used",
    "nbr_pending",
)

ST0: TableModel[GenConfig] = TableModel(0, "GEN_CONFIG_TBL", _st0_layout, GenConfig)


# -- ST1 --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GeneralMfgId:
    """ST1 GENERAL_MFG_ID_TBL (32 bytes with character identifiers; serial at offset 16)."""

    manufacturer: str
    """MANUFACTURER: 4 characters, e.g. ``"EE  "`` (Elster); padding kept."""
    ed_model: str
    """ED_MODEL: 8 characters."""
    hw_version_number: int = 0
    """HW_VERSION_NUMBER."""
    hw_revision_number: int = 0
    """HW_REVISION_NUMBER."""
    fw_version_number: int = 0
    """FW_VERSION_NUMBER."""
    fw_revision_number: int = 0
    """FW_REVISION_NUMBER."""
    mfg_serial_number: str = ""
    """MFG_SERIAL_NUMBER: 16 characters, or 16 BCD digits when ID_FORM is BCD."""


def _st1_layout(ctx: TableContext) -> Layout:
    return record(
        GeneralMfgId,
        ("manufacturer", chars(4, ctx)),
        ("ed_model", chars(8, ctx)),
        ("hw_version_number", u8()),
        ("hw_revision_number", u8()),
        ("fw_version_number", u8()),
        ("fw_revision_number", u8()),
        ("mfg_serial_number", ident(16, ctx)),
    )


ST1: TableModel[GeneralMfgId] = TableModel(1, "GENERAL_MFG_ID_TBL", _st1_layout, GeneralMfgId)


# -- ST3 --------------------------------------------------------------------------------------


class EdMode(enum.IntFlag):
    """ST3 ED_MODE (also the SP6 parameter)."""

    METERING = 0x01
    TEST_MODE = 0x02
    METER_SHOP_MODE = 0x04
    FACTORY = 0x08  #: C12.19-2008 [M]


class EdStdStatus1(enum.IntFlag):
    """ST3 ED_STD_STATUS1 (2 bytes in DATA_ORDER; bits 14-15 are filler)."""

    UNPROGRAMMED = 0x0001
    CONFIGURATION_ERROR = 0x0002
    SELF_CHK_ERROR = 0x0004
    RAM_FAILURE = 0x0008
    ROM_FAILURE = 0x0010
    NONVOL_MEM_FAILURE = 0x0020
    CLOCK_ERROR = 0x0040
    MEASUREMENT_ERROR = 0x0080
    LOW_BATTERY = 0x0100
    LOW_LOSS_POTENTIAL = 0x0200
    DEMAND_OVERLOAD = 0x0400
    POWER_FAILURE = 0x0800
    TAMPER_DETECT = 0x1000
    REVERSE_ROTATION = 0x2000


@dataclass(frozen=True, kw_only=True)
class EdModeStatus:
    """ST3 ED_MODE_STATUS_TBL."""

    ed_mode: EdMode = EdMode.METERING
    """ED_MODE flags."""
    ed_std_status1: EdStdStatus1 = EdStdStatus1(0)
    """ED_STD_STATUS1 flags."""
    ed_std_status2: int = 0
    """ED_STD_STATUS2: reserved, kept as read."""
    ed_mfg_status: bytes = b""
    """ED_MFG_STATUS: DIM_MFG_STATUS_USED bytes (ST0), or all remaining bytes without ST0."""


def _st3_layout(ctx: TableContext) -> Layout:
    mfg = rest() if ctx.st0 is None else bytes_field(ctx.st0.dim_mfg_status_used)
    return record(
        EdModeStatus,
        ("ed_mode", flags(EdMode, u8())),
        ("ed_std_status1", flags(EdStdStatus1, uint(2, ctx))),
        ("ed_std_status2", u8()),
        ("ed_mfg_status", mfg),
    )


def _st3_structs(ctx: TableContext) -> StructCodec[EdModeStatus] | None:
    """ST3 in one ``Struct`` (see :mod:`.structs`) once ST0 sizes ED_MFG_STATUS."""
    if ctx.st0 is None:
        return None
    mfg_size = ctx.st0.dim_mfg_status_used
    packer = struct.Struct(f"{prefix(ctx)}BHB{mfg_size}s")

    def parse(data: bytes) -> EdModeStatus:
        mode, status1, status2, mfg = packer.unpack(data)
        return frozen(
            EdModeStatus,
            {
                "ed_mode": EdMode(mode), "ed_std_status1": EdStdStatus1(status1),
                "ed_std_status2": status2, "ed_mfg_status": mfg,
            },
        )  # fmt: skip

    def build(value: EdModeStatus) -> bytes:
        mfg = value.ed_mfg_status
        if type(mfg) is not bytes or len(mfg) != mfg_size:  # "s" would pad or cut it
            raise ValueError("construct decides")
        return packer.pack(value.ed_mode, value.ed_std_status1, value.ed_std_status2, mfg)

    return StructCodec(parse, build)


ST3: TableModel[EdModeStatus] = TableModel(
    3, "ED_MODE_STATUS_TBL", _st3_layout, EdModeStatus, structs=_st3_structs
)


# -- ST5 --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DeviceIdent:
    """ST5 DEVICE_IDENT_TBL."""

    identification: str
    """IDENTIFICATION: 20 characters, or 20 BCD digits when ID_FORM is BCD."""


def _st5_layout(ctx: TableContext) -> Layout:
    return record(DeviceIdent, ("identification", ident(20, ctx)))


ST5: TableModel[DeviceIdent] = TableModel(5, "DEVICE_IDENT_TBL", _st5_layout, DeviceIdent)
