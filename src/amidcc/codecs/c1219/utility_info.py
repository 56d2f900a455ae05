"""ST6 UTILITY_INFO_TBL ("UTIL_INFO_TBL"): where, and for whom, the utility programmed the meter.

A C12.22 Register names the meter, not its premise or account; ST6 carries both (SERVICE_POINT_ID,
CUSTOMER_ID), so a head-end reads it at registration to see a meter exchange (scenario S1 step 9).

Layout [M]. The table is not in protocol-facts.md; two independent public sources agree on it: the
C12.19 table decoders of S11 (``MakeST6``, find_string id 18014897426) and a meter firmware header
(``_std_table_06_t``, id 4924819988). Both give, in this order::

    OWNER_NAME CHAR(20)  UTILITY_DIV CHAR(20)  SERVICE_POINT_ID  ELEC_ADDR  DEVICE_ID
    UTIL_SER_NBR  CUSTOMER_ID (20 characters each, or 20 BCD digits when ID_FORM is BCD)
    COORDINATE_1..3 BINARY(10)  TARIFF_ID CHAR(8)
    EX1_SW_VENDOR CHAR(4) EX1_SW_VERSION_NUMBER UINT8 EX1_SW_REVISION_NUMBER UINT8
    EX2_SW_VENDOR CHAR(4) EX2_SW_VERSION_NUMBER UINT8 EX2_SW_REVISION_NUMBER UINT8
    PROGRAMMER_NAME CHAR(10)  MISC_ID CHAR(30)                               = 230 bytes

A third firmware header (ids 3873554078, 4336591786) has UTILITY_DIV of 16 and appends a
firmware-load date; :attr:`TableContext.st6_utility_div_octets` and ``st6_mfg_octets`` switch to
that. The BCD form of the five identifiers follows the firmware header's "20 characters or BCD
digits" comment [L]; both sources only build the character form.
"""

from __future__ import annotations

from dataclasses import dataclass

from .context import TableContext
from .fields import Layout, bytes_field, chars, ident, record, u8
from .model import TableModel

__all__ = ["ST6", "UtilityInfo", "id_text"]

#: Size of each COORDINATE_n field.
COORDINATE_OCTETS = 10


@dataclass(frozen=True, kw_only=True)
class UtilityInfo:
    """ST6 UTILITY_INFO_TBL. Text fields keep their padding when parsed (see :func:`id_text`)."""

    owner_name: str = ""
    """OWNER_NAME: the utility that owns the meter (20 characters)."""
    utility_div: str = ""
    """UTILITY_DIV: the utility division (20 characters; 16 in one firmware)."""
    service_point_id: str = ""
    """SERVICE_POINT_ID: the service point (premise) where the meter is installed."""
    elec_addr: str = ""
    """ELEC_ADDR: the logical electrical address (for mapping and studies only)."""
    device_id: str = ""
    """DEVICE_ID: the id the utility attached to the hardware."""
    util_ser_nbr: str = ""
    """UTIL_SER_NBR: the utility's serial number for the meter."""
    customer_id: str = ""
    """CUSTOMER_ID: the customer (billing account) served."""
    coordinate_1: bytes = bytes(COORDINATE_OCTETS)
    """COORDINATE_1: mapping coordinate x (10 bytes, utility defined)."""
    coordinate_2: bytes = bytes(COORDINATE_OCTETS)
    """COORDINATE_2: mapping coordinate y."""
    coordinate_3: bytes = bytes(COORDINATE_OCTETS)
    """COORDINATE_3: mapping coordinate z."""
    tariff_id: str = ""
    """TARIFF_ID: the billing tariff (8 characters)."""
    ex1_sw_vendor: str = ""
    """EX1_SW_VENDOR: maker of the configuration software that last programmed it (4 characters)."""
    ex1_sw_version_number: int = 0
    """EX1_SW_VERSION_NUMBER."""
    ex1_sw_revision_number: int = 0
    """EX1_SW_REVISION_NUMBER."""
    ex2_sw_vendor: str = ""
    """EX2_SW_VENDOR: maker of a second programming software (4 characters)."""
    ex2_sw_version_number: int = 0
    """EX2_SW_VERSION_NUMBER."""
    ex2_sw_revision_number: int = 0
    """EX2_SW_REVISION_NUMBER."""
    programmer_name: str = ""
    """PROGRAMMER_NAME: the last programmer or programming device (10 characters)."""
    misc_id: str = ""
    """MISC_ID: anything else the utility wants kept (30 characters)."""
    mfg_extension: bytes = b""
    """Bytes after MISC_ID (``st6_mfg_octets``; none in the standard layout)."""


def _st6_layout(ctx: TableContext) -> Layout:
    fields = [
        ("owner_name", chars(20, ctx)),
        ("utility_div", chars(ctx.st6_utility_div_octets, ctx)),
        *((name, ident(20, ctx)) for name in _IDENTIFIERS),
        *((f"coordinate_{n}", bytes_field(COORDINATE_OCTETS)) for n in (1, 2, 3)),
        ("tariff_id", chars(8, ctx)),
    ]
    for ex in ("ex1", "ex2"):
        fields += [
            (f"{ex}_sw_vendor", chars(4, ctx)),
            (f"{ex}_sw_version_number", u8()),
            (f"{ex}_sw_revision_number", u8()),
        ]
    fields += [("programmer_name", chars(10, ctx)), ("misc_id", chars(30, ctx))]
    if ctx.st6_mfg_octets:
        fields.append(("mfg_extension", bytes_field(ctx.st6_mfg_octets)))
    return record(UtilityInfo, *fields)


_IDENTIFIERS = ("service_point_id", "elec_addr", "device_id", "util_ser_nbr", "customer_id")

ST6: TableModel[UtilityInfo] = TableModel(6, "UTILITY_INFO_TBL", _st6_layout, UtilityInfo)

#: What an unprogrammed field holds: space or NUL padding, erased EEPROM (FF as decoded by
#: ISO 646 / UTF-8 with surrogate escapes, or by Latin-1).
_BLANK = " \x00\udcff\xff"


def id_text(value: str) -> str:
    """A text or identifier field without its padding; ``""`` when it was never programmed.

    BCD identifiers come left-padded with zeros; all zeros counts as blank.
    """
    text = value.strip(_BLANK)
    return "" if not text.strip("0") and value.isdigit() else text
