"""scapy layers for ANSI C12.18 and C12.22, usable like a scapy contrib module.

::

    >>> from amidcc.pcap.layers import C1222, EPSEM, EPSEMService, PSEMReadFull, set_keys
    >>> from scapy.utils import rdpcap
    >>> pkts = rdpcap("capture.pcap")          # TCP/UDP port 1153 dissect as C12.22
    >>> pkts[3][C1222].show()
    >>> apdu = C1222(called_ap_title=".123.8437", calling_ap_title=".123.4",
    ...              calling_ap_invocation_id=3) / EPSEM(services=[EPSEMService() / PSEMReadFull(table_id=1)])
    >>> set_keys({2: bytes.fromhex("01020304050607080102030405060708")})   # decrypt mode 2

Importing this package binds :class:`C1222` to TCP and UDP port 1153 (the IANA ``c1222-acse``
port) in both directions. It imports scapy by module, never ``scapy.all``; the rest of
``amidcc.pcap`` does not need scapy to be imported at all.
"""

from __future__ import annotations

from scapy.layers.inet import TCP, UDP
from scapy.packet import bind_layers

from . import psem
from .c1218 import C1218, bind_c1218
from .c1222 import C1222, EPSEM, EPSEMPlaintext, EPSEMService, set_keys
from .psem import *  # noqa: F403  (the PSEM service layers; psem.__all__ lists them)

__all__ = [
    "C1218",
    "C1222",
    "C1222_PORT",
    "EPSEM",
    "EPSEMPlaintext",
    "EPSEMService",
    "bind_c1218",
    "set_keys",
]
__all__ += psem.__all__

#: TCP and UDP port of C12.22.
C1222_PORT = 1153

for _transport in (TCP, UDP):
    bind_layers(_transport, C1222, sport=C1222_PORT)
    bind_layers(_transport, C1222, dport=C1222_PORT)
