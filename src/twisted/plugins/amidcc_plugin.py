"""twistd drop-in for the amidcc gateway: ``twistd -n --reactor=asyncio amidcc --config FILE``.

twistd imports this module while scanning for plugins, before ``--reactor`` applies, so it imports
nothing heavy: ServiceMaker loads ``amidcc.gateway.tap`` only when the ``amidcc`` subcommand is used.
There is deliberately no ``__init__.py`` in ``src/twisted`` or ``src/twisted/plugins``.
"""

from twisted.application.service import ServiceMaker

amidcc = ServiceMaker(
    "amidcc",
    "amidcc.gateway.tap",
    "AMI head-end and DCC gateway (ANSI C12.18 / C12.22 over TCP, UDP, MQTT, Modbus)",
    "amidcc",
)
