"""Packet-capture tooling: C12.22 capture analysis, scapy layers, and a pcap writer.

Modules, none of which imports scapy when imported (see docs/pcap.md):

- ``writer``: write C12.22 payloads to a pcap file with synthetic IP/TCP/UDP headers (no scapy;
  the gateway's capture option uses it);
- ``packets``, ``reassembly``: link/IP/TCP/UDP header parsing and TCP stream reassembly;
- ``decode``, ``records``, ``summary``, ``analysis``: the analyser behind ``amidcc pcap analyze``;
- ``icsnpp``: messages as ICSNPP Zeek log rows, and the ``--json`` objects;
- ``reader``: raw frames from pcap files (read directly) and pcapng/gzip files (through scapy's
  raw reader, imported lazily);
- ``layers``: scapy layers for C12.18 and C12.22 (importing it imports scapy, by module).
"""
