"""The table registry, manufacturer tables, and garbage: every parse raises only RemoteProtocolError."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amidcc.codecs.c1219 import (
    MT0,
    MT1,
    TABLES,
    ActLog,
    ActLp,
    ActRegs,
    Clock,
    CurrentRegData,
    DataBlock,
    DataOrder,
    DataSelection,
    DemandRecord,
    DeviceIdent,
    EdModeStatus,
    EventEntry,
    EventLogData,
    EventsId,
    FormatControl,
    GenConfig,
    GeneralMfgId,
    HistoryEntry,
    HistoryLogData,
    IntervalFormat,
    LogCtrl,
    LogFlag,
    LpBlock,
    LpCtrl,
    LpData,
    LpEndReading,
    LpFlag,
    LpInterval,
    LpSetCtrl,
    LpSetDims,
    LpSetStatus,
    LpSourceSelect,
    LpStatus,
    ProcedureInitiate,
    ProcedureResponse,
    RegFunc1Flag,
    TableContext,
    TableModel,
    TimeFormat,
    UnknownTableError,
    decode_table,
    encode_table,
    fit_set_dims,
    register_mfg_table,
    split_table_id,
    table_id,
    table_model,
)
from amidcc.codecs.c1219.load_profile import ExtendedIntStatus
from amidcc.codecs.c1219.mfg import (
    HanDevice,
    HanDeviceType,
    HanLinkState,
    HanStatus,
    SelfTestCheck,
    SelfTestResult,
    SelfTestResults,
    SelfTestStatus,
)
from amidcc.codecs.errors import LocalProtocolError, RemoteProtocolError

WHEN = datetime(2024, 6, 1, 12, 0, 0)

# -- a device description complete enough for every registered table ---------------------------

ST0_VALUE = fit_set_dims(
    GenConfig(
        format_control=FormatControl(tm_format=TimeFormat.BCD),
        max_proc_parm_length=4,
        max_resp_data_len=4,
        dim_mfg_status_used=1,
        std_tbls_used=frozenset(
            {0, 1, 3, 5, 7, 8, 21, 22, 23, 52, 61, 62, 63, 64, 71, 72, 73, 74, 75, 76}
        ),
        mfg_tbls_used=frozenset({0, 1}),
        std_proc_used=frozenset({6, 7, 9}),
    )
)
ST21_VALUE = ActRegs(
    reg_func1_flags=RegFunc1Flag.DATE_TIME_FIELD
    | RegFunc1Flag.DEMAND_RESET_CTR
    | RegFunc1Flag.CUM_DEMAND,
    nbr_summations=2,
    nbr_demands=1,
    nbr_coin_values=1,
    nbr_occur=1,
    nbr_tiers=1,
)
ST61_VALUE = ActLp(
    lp_flags=LpFlag.BLK_END_READ | LpFlag.SIMPLE_INT_STATUS | LpFlag.EXTENDED_INT_STATUS,
    sets=(LpSetDims(nbr_blks=2, nbr_blk_ints=3, nbr_chns=3, max_int_time=15), None, None, None),
)
ST62_VALUE = LpCtrl(
    sets=(
        LpSetCtrl(sources=(LpSourceSelect(),) * 3, int_fmt_cde=IntervalFormat.UINT16),
        None,
        None,
        None,
    )
)
ST71_VALUE = ActLog(
    log_flags=LogFlag.EVENT_NUMBER | LogFlag.HIST_DATE_TIME | LogFlag.HIST_SEQ_NBR,
    nbr_std_events=4,
    nbr_mfg_events=1,
    hist_data_length=1,
    event_data_length=2,
    nbr_history_entries=2,
    nbr_event_entries=2,
    ext_log_flags=None,
    nbr_program_tables=None,
)
CTX = TableContext(
    st21=ST21_VALUE, st61=ST61_VALUE, st62=ST62_VALUE, st71=ST71_VALUE, st71_extended=False
).with_table(0, ST0_VALUE)

_DEMAND = DemandRecord(event_times=(WHEN,), cum_demand=7, demands=(3,))
_BLOCK = DataBlock(summations=(1, 2), demands=(_DEMAND,), coincidents=((4,),))
_INTERVAL = LpInterval(values=(1, 2, 3), status=ExtendedIntStatus(channels=(0, 1, 2)))
_LP_BLOCK = LpBlock(
    end_time=WHEN,
    end_readings=(LpEndReading(block_end_read=9),) * 3,
    simple_int_status=frozenset({0, 2}),
    intervals=(_INTERVAL,) * 3,
)

SAMPLES: dict[int, Any] = {
    0: ST0_VALUE,
    1: GeneralMfgId(manufacturer="AMID", ed_model="SIM-1   ", mfg_serial_number="0000000000000042"),
    3: EdModeStatus(ed_mfg_status=b"\x00"),
    5: DeviceIdent(identification="X" * 20),
    7: ProcedureInitiate(number=9, seq_nbr=1, params=b"\x01"),
    8: ProcedureResponse(number=9, seq_nbr=1),
    21: ST21_VALUE,
    22: DataSelection(
        summation_select=(1, 2), demand_select=(3,), coincident_select=(4,), coin_demand_assoc=(0,)
    ),
    23: CurrentRegData(nbr_demand_resets=1, tot_data_block=_BLOCK, tier_data_blocks=(_BLOCK,)),
    52: Clock(clock_calendar=WHEN),
    61: ST61_VALUE,
    62: ST62_VALUE,
    63: LpStatus(sets=(LpSetStatus(), None, None, None)),
    64: LpData(blocks=(_LP_BLOCK, _LP_BLOCK)),
    71: ST71_VALUE,
    72: EventsId(std_events_supported=frozenset({1, 2})),
    73: LogCtrl(std_tbls_monitored=frozenset({7})),
    74: HistoryLogData(
        entries=(HistoryEntry(event_number=1, history_seq_nbr=1, argument=b"\x00"),) * 2
    ),
    75: LogCtrl(std_events_monitored=frozenset({1})),
    76: EventLogData(
        entries=(EventEntry(event_time=WHEN, event_number=1, argument=b"\x00\x00"),) * 2
    ),
    0x800: SelfTestResults(results=(SelfTestResult(check_id=SelfTestCheck.RAM, timestamp=WHEN),)),
    0x801: HanStatus(devices=(HanDevice(device_id=bytes(8)),)),
}
SAMPLE_BYTES = {number: encode_table(number, value, CTX) for number, value in SAMPLES.items()}


def test_every_sample_round_trips_through_the_registry() -> None:
    for number, raw in SAMPLE_BYTES.items():
        assert decode_table(number, raw, CTX) == SAMPLES[number], number
        size = table_model(number).size(CTX)
        assert size is None or size == len(raw)


def test_registry_contents() -> None:
    expected = {
        0,
        1,
        3,
        5,
        7,
        8,
        21,
        22,
        23,
        52,
        61,
        62,
        63,
        64,
        65,
        66,
        67,
        71,
        72,
        73,
        74,
        75,
        76,
    }
    assert expected | {0x800, 0x801} <= set(TABLES)
    for number, model in TABLES.items():
        assert model.number == number
        assert model.name.endswith("_TBL")
    assert TABLES[23].name == "CURRENT_REG_DATA_TBL" and TABLES[23].label == "ST23"
    assert MT1.label == "MT1"


def test_unknown_table_is_a_clear_local_error() -> None:
    with pytest.raises(UnknownTableError, match="ST99") as info:
        decode_table(99, b"", CTX)
    assert isinstance(info.value, LocalProtocolError) and info.value.number == 99
    with pytest.raises(UnknownTableError, match="MT7"):
        encode_table(0x807, object(), CTX)


def test_table_ids() -> None:
    # protocol-facts.md 2.5: bit 11 manufacturer, bit 12 pending.
    assert table_id(23) == 0x0017
    assert table_id(1, mfg=True) == 0x0801
    assert table_id(64, pending=True) == 0x1040
    assert split_table_id(0x1801) == (1, True, True)
    assert table_model(0x1000 | 52) is TABLES[52]  # a pending table has its table's layout
    with pytest.raises(LocalProtocolError):
        table_id(2048)


def test_build_type_is_checked() -> None:
    with pytest.raises(LocalProtocolError, match="GeneralMfgId"):
        encode_table(1, DeviceIdent(identification=""), CTX)


# -- manufacturer tables -----------------------------------------------------------------------


@pytest.mark.parametrize("order", list(DataOrder))
@pytest.mark.parametrize(
    "tm", [TimeFormat.BCD, TimeFormat.UINT8, TimeFormat.UINT32_MINUTES, TimeFormat.UINT32_SECONDS]
)
def test_mt0_mt1_round_trip(order: DataOrder, tm: TimeFormat) -> None:
    ctx = TableContext(format=FormatControl(data_order=order, tm_format=tm))
    results = SelfTestResults(
        results=(
            SelfTestResult(
                check_id=SelfTestCheck.CLOCK,
                status=SelfTestStatus.FAIL,
                detail_code=0x0102,
                timestamp=WHEN,
            ),
            SelfTestResult(check_id=0x1234, status=9),
            SelfTestResult(
                check_id=SelfTestCheck.BATTERY, status=SelfTestStatus.PASS, timestamp=WHEN
            ),
        )
    )
    raw = MT0.build(results, ctx)
    assert MT0.parse(raw, ctx) == results
    ltime = {1: 6, 2: 6, 3: 5, 4: 4}[tm]
    assert raw[0] == 3 and len(raw) == 1 + 3 * (5 + ltime)
    assert raw[1:3] == ((3).to_bytes(2, order.byteorder))
    han = HanStatus(
        devices=(
            HanDevice(
                device_id=bytes.fromhex("0011223344556677"),
                device_type=HanDeviceType.THERMOSTAT,
                link_state=HanLinkState.JOINED,
                last_contact=WHEN,
            ),
            HanDevice(device_id=bytes(8), device_type=200),
        )
    )
    raw = MT1.build(han, ctx)
    assert MT1.parse(raw, ctx) == han
    assert raw[:10] == bytes.fromhex("02 0011223344556677 02")
    assert MT0.size(ctx) is None


def test_mt_values_are_checked() -> None:
    with pytest.raises(LocalProtocolError):
        MT1.build(HanStatus(devices=(HanDevice(device_id=b"short"),)), CTX)
    with pytest.raises(LocalProtocolError):
        MT0.build(SelfTestResults(results=(SelfTestResult(check_id=1),) * 256), CTX)


def test_register_mfg_table() -> None:
    custom = TableModel(0x800 | 42, "VENDOR_TBL", MT1.layout, HanStatus)
    register_mfg_table(42, custom)
    try:
        assert table_model(0x82A) is custom
        with pytest.raises(LocalProtocolError):
            register_mfg_table(42, TableModel(0x82A, "OTHER_TBL", MT1.layout, HanStatus))
        with pytest.raises(LocalProtocolError):
            register_mfg_table(43, custom)
        register_mfg_table(42, custom)  # the same model again is fine
    finally:
        del TABLES[0x82A]


# -- garbage in: RemoteProtocolError and nothing else ------------------------------------------


def _check_garbage(number: int, data: bytes) -> None:
    try:
        value = decode_table(number, data, CTX)
    except RemoteProtocolError:
        return
    # Whatever decodes is a valid value: it builds, and decodes back to itself.
    again = encode_table(number, value, CTX)
    assert decode_table(number, again, CTX) == value


@given(number=st.sampled_from(sorted(SAMPLES)), data=st.binary(max_size=80))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_remote_errors(number: int, data: bytes) -> None:
    _check_garbage(number, data)


@given(number=st.sampled_from(sorted(SAMPLES)), choice=st.data())
@settings(max_examples=400, deadline=None)
def test_mutated_tables_raise_only_remote_errors(number: int, choice: st.DataObject) -> None:
    raw = bytearray(SAMPLE_BYTES[number])
    kind = choice.draw(st.sampled_from(["truncate", "extend", "flip", "scramble"]))
    if kind == "truncate":
        del raw[choice.draw(st.integers(0, max(len(raw) - 1, 0))) :]
    elif kind == "extend":
        raw += choice.draw(st.binary(min_size=1, max_size=8))
    elif kind == "flip" and raw:
        for _ in range(choice.draw(st.integers(1, 4))):
            i = choice.draw(st.integers(0, len(raw) - 1))
            raw[i] = choice.draw(st.integers(0, 255))
    else:
        raw = bytearray(choice.draw(st.binary(min_size=len(raw), max_size=len(raw))))
    _check_garbage(number, bytes(raw))
