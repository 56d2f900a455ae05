"""The knobs of a simulated meter, shared by every meter of a fleet (one object, not one per meter)."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from amidcc.codecs.errors import LocalProtocolError
from amidcc.codecs.psem import pad_password as psem_pad_password

from .faults import FAULTS, FaultKind

__all__ = ["DAY", "Access", "MeterConfig", "PortSharing", "pad_password"]

DAY = 86400.0


def pad_password(text: str | bytes, *, pad: bytes = b" ") -> bytes:
    """A 20-byte PSEM password: ``text`` padded with ``pad``.

    Space by default, as in the C12.22 standard's example 8 ("PASSWORD" + 12 spaces) and
    MeteringSDK, and as the gateway sends it; termineter pads with NUL, so a scenario can ask for
    that (meters compare all 20 bytes: the padding must match the head-end's).
    """
    try:
        return psem_pad_password(text, fill=pad)
    except LocalProtocolError as e:
        raise ValueError(str(e)) from None


class PortSharing(enum.StrEnum):
    """FR26: how the local (optical) port and the network share the meter."""

    SHARE = "share"  #: both at once
    LOCAL_PREEMPTS = "local-preempts"  #: a local session makes the network get BSY
    NETWORK_PREEMPTS = "network-preempts"  #: a network session makes the local port get BSY


class Access(enum.IntEnum):
    """Access level a password grants."""

    NONE = 0  #: only the anonymous tables
    READ = 1  #: read every table
    WRITE = 2  #: read, write the programmable tables, run procedures


def _critical_kinds() -> frozenset[FaultKind]:
    return frozenset(k for k, spec in FAULTS.items() if spec.critical)


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterConfig:
    """Everything configurable about a simulated meter (durations in seconds)."""

    interval: int = 900
    """Load-profile interval (ST61 MAX_INT_TIME, minutes * 60); 900 = 15 minutes."""
    lp_days: int = 48
    """Days of interval data kept (one ST64 block per day); at least 45 (NFR5)."""
    log_days: float = 60.0
    """Days of events the event log answers for (NFR5: at least 45)."""
    event_capacity: int = 512
    """ST71 NBR_EVENT_ENTRIES: the most recent events kept within ``log_days``."""
    history_days: float = 60.0
    """Synthetic history before ``start_time``: the meter was installed this long ago."""
    selftest_period: float = DAY
    """Periodic self-diagnostic period (FR1)."""
    metrology_period: float = DAY
    """Metrology health-check period: from one day to 31 days (NFR6)."""
    passwords: tuple[tuple[bytes, Access], ...] = (
        (pad_password("reader"), Access.READ),
        (pad_password("master"), Access.WRITE),
    )
    """(20-byte password, access) pairs the Security service accepts."""
    anonymous_tables: frozenset[int] = frozenset({0, 1})
    """Tables readable without a Security service."""
    session_timeout: int = 120
    """C12.22 session idle timeout (seconds) granted at Logon, and the C12.18 session timeout."""
    clock_drift_ppm: float = 5.0
    """Largest clock drift drawn for a meter (seeded, either sign)."""
    time_sync_drift_ppm: float = 2000.0
    """Extra drift while a time-sync fault is active (2000 ppm is about 3 minutes a day)."""
    metrology_fault_scale: float = 0.6
    """Registration factor while a metrology fault is active (0.6: 40 % under-registration)."""
    inconsistency_offset_wh: int = 2500
    """Register offset (Wh) while an internal-data-inconsistency fault is active."""
    big_endian: bool = False
    """ST0 DATA_ORDER: False = LSB first (the usual), True = MSB first."""
    tm_format: int = 2
    """ST0 TM_FORMAT (1 BCD, 2 UINT8 fields, 3 minutes, 4 seconds since 1970)."""
    nominal_voltage: float = 240.0
    """Nominal service voltage (V)."""
    mean_power_w: float = 600.0
    """Fleet-average power draw (each meter draws its own from its seed)."""
    push_kinds: frozenset[FaultKind] = field(default_factory=_critical_kinds)
    """Fault kinds pushed at once as alarms (default: the critical ones of FR1, FR17 and S7)."""
    han_devices: int = 2
    """Subscribed HAN devices listed in MT1 (0-16)."""
    monthly_demand_reset: bool = True
    """Reset maximum demand at each UTC month start (in addition to SP9)."""
    history_outage_rate: float = 0.03
    """Momentary outages per day in the synthetic history (power down/up event pairs)."""
    port_sharing: PortSharing = PortSharing.SHARE
    """FR26 local port / network pre-emption."""
    key_secret: bytes = b"amidcc-sim"
    """Secret the per-meter C12.22 keys are derived from (see :meth:`meter_key`)."""
    key_id: int = 0
    """C12.22 key id the meters use."""
    max_faults: int = 64
    """Fault records kept per meter (oldest cleared ones dropped first)."""
    max_stored_events: int = 256
    """Events kept in memory per meter beyond the generated ones."""
    program_sizes: tuple[tuple[int, int], ...] = ((53, 10), (54, 64))
    """Opaque programmable tables (number, size in bytes) besides ST5 and ST6 (modelled, always
    present); see docs/simulators.md."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        """Validation messages, each naming the key (empty when valid)."""
        out: list[str] = []
        if self.interval <= 0 or 86400 % self.interval:
            out.append(f"interval: must divide a day, got {self.interval}")
        if self.lp_days < 45:
            out.append(f"lp_days: NFR5 needs at least 45, got {self.lp_days}")
        if self.log_days < 45:
            out.append(f"log_days: NFR5 needs at least 45, got {self.log_days}")
        if not DAY <= self.metrology_period <= 31 * DAY:
            out.append(f"metrology_period: NFR6 needs daily to monthly, got {self.metrology_period}s")
        if self.selftest_period < 60:
            out.append(f"selftest_period: at least 60 s, got {self.selftest_period}")
        if not 16 <= self.event_capacity <= 65535:
            out.append(f"event_capacity: 16 to 65535, got {self.event_capacity}")
        if self.tm_format not in (1, 2, 3, 4):
            out.append(f"tm_format: 1 to 4, got {self.tm_format}")
        if not 0 <= self.han_devices <= 16:
            out.append(f"han_devices: 0 to 16, got {self.han_devices}")
        if not 0.0 <= self.metrology_fault_scale <= 2.0:
            out.append(f"metrology_fault_scale: 0 to 2, got {self.metrology_fault_scale}")
        if any(len(pw) != 20 for pw, _ in self.passwords):
            out.append("passwords: each must be exactly 20 bytes (use pad_password)")
        # The log must hold 45 days of the generated events: two runs a period plus a little.
        per_day = DAY / self.selftest_period + DAY / self.metrology_period + 1.0
        if per_day * 45 > self.event_capacity:
            out.append(
                f"event_capacity: {self.event_capacity} entries cannot hold 45 days at "
                f"{per_day:.1f} events a day (raise it or the self-test period)"
            )
        return out

    def meter_key(self, serial: str) -> bytes:
        """The meter's 16-byte C12.22 key (EAX'), derived from ``key_secret`` and the serial, so
        the head-end's test configuration can compute it too."""
        return hashlib.blake2b(serial.encode(), key=self.key_secret[:64], digest_size=16).digest()

    def access_for(self, password: bytes) -> Access | None:
        """The access a 20-byte password grants, or None when it is wrong."""
        for pw, access in self.passwords:
            if pw == password:
                return access
        return None
