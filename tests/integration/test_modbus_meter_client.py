"""The gateway's MeterClient over the Modbus link: the caller does not care which link it is.

Real sockets: one simulated collector (pymodbus server) and the ModbusLink's pymodbus client inside
the pytest-twisted asyncio reactor; the collector's clock is frozen at ``T``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted

from amidcc.codecs.c1219 import ProcedureResult
from amidcc.gateway.config import ModbusCollector as CollectorConfig
from amidcc.gateway.config import RequestsSection
from amidcc.gateway.links.base import LinkKind, MeterAddress
from amidcc.gateway.links.modbus import ModbusLink, ModbusSettings
from amidcc.gateway.meters import MeterClient
from amidcc.simulators import MeterIdentity, SimMeter
from amidcc.simulators.config import pad_password
from amidcc.simulators.modbus import ModbusCollector

from .test_modbus import aio, sleep

pytestmark = pytest.mark.integration

T = float(int(time.time()) // 900 * 900 + 450)


@pytest_twisted.async_yield_fixture
async def client(reactor: Any) -> AsyncIterator[tuple[MeterClient, dict[str, SimMeter]]]:
    meters = {
        u: SimMeter(
            MeterIdentity(manufacturer="AMDC", model="MB-3PH", serial=f"MC{u:04d}", seed=u),
            start_time=T - 7200,
        )  # fmt: skip
        for u in (5, 6)
    }
    collector = ModbusCollector(meters, clock=lambda: T)
    await aio(collector.start())
    settings = ModbusSettings(
        collectors=(CollectorConfig(endpoint=collector.endpoint, unit_ids=(5, 6)),),
        password=pad_password("master"), user_id=3, timeout=1.0,
    )  # fmt: skip
    link = ModbusLink(settings, clock=reactor)
    link.start()
    by_id = {m.meter_id: m for m in meters.values()}
    units = {m.meter_id: u for u, m in meters.items()}

    def resolve(meter_id: str) -> MeterAddress:
        return MeterAddress(meter_id=meter_id, ap_title=".1", link=LinkKind.MODBUS,
                            route=(collector.endpoint,), unit_id=units[meter_id])  # fmt: skip

    while not link.is_reachable(resolve("MC0005")):
        await sleep(0.02)
    mc = MeterClient([link], resolve=resolve, clock=reactor, requests=RequestsSection(timeout=3.0))
    yield mc, by_id
    await link.stop()
    await aio(collector.stop())


@pytest_twisted.ensureDeferred
async def test_decoded_table_reads(client: tuple[MeterClient, dict[str, SimMeter]]) -> None:
    mc, meters = client
    st1 = await mc.read_table("MC0006", 1)
    assert st1.value.mfg_serial_number.strip() == "MC0006"
    st23 = await mc.read_table("MC0006", 23)  # ST21 is read first for its layout
    assert st23.value.tot_data_block.summations[:2] == meters["MC0006"].registers(T)
    part = await mc.read_table("MC0006", 1, offset=4, count=8)
    assert part.data == b"MB-3PH  " and part.value is None


@pytest_twisted.ensureDeferred
async def test_procedure_and_ping(client: tuple[MeterClient, dict[str, SimMeter]]) -> None:
    mc, meters = client
    answer = await mc.run_procedure("MC0005", 11)  # SP11 self-test: ST7 write, ST8 read
    assert answer.result_code == ProcedureResult.COMPLETED
    failing = int.from_bytes(answer.resp_data[:4], "little")
    assert failing == meters["MC0005"].failing_checks(T) == 0
    assert await mc.ping("MC0005") >= 0.0
