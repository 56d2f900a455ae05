"""amidcc: an AMI head-end and Data Center Concentrator gateway.

Subpackages: ``codecs`` (sans-I/O protocol core), ``topology``, ``gateway`` (Twisted), ``mms``,
``simulators``, ``fieldtool``, ``conformance`` and ``pcap`` (scapy tooling, optional extra).
"""

__version__ = "0.1.0.dev0"
