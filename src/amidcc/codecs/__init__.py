"""The sans-I/O protocol core: bytes in, events and objects out.

Nothing in this package touches a socket, a reactor, a thread, a clock or global state. Time enters
as an argument. Incomplete input is not an error (framers say "need more"); malformed input raises
:class:`~amidcc.codecs.errors.RemoteProtocolError` carrying the PSEM response code (or NAK) to
answer with. Any other exception escaping this package is a bug.

Modules:

- ``codes``: PSEM response codes and the C12.18 ACK/NAK bytes.
- ``errors``: the error tree.
- ``c1218``: CRC, incremental framer, and the link state machine (host and device roles).
- ``psem``: PSEM requests and responses, including the C12.22 node services.
- ``c1219``: C12.19 table models (construct).
- ``c1222``: BER, ACSE APDUs, EPSEM, EAX' security, TCP stream and UDP datagram handling,
  segmentation.
"""
