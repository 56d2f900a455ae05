"""The gateway: the only layer that runs the Twisted reactor.

Importing this package imports nothing else (the twistd plugin and the CLI rely on that).

- ``config``: the typed TOML configuration, validated at load (``load_config``, ``sample_config``).
- ``tap``: the daemon: twistd ``Options``/``makeService``, ``GatewayService``, periodic jobs.
- ``metrics``: the ``amidcc_*`` Prometheus families (``GatewayMetrics``) and ``/metrics``.
- ``web``: the HTTP root served on ``metrics.listen``: ``/metrics`` and ``/health``.
- ``links``: the link adapters behind one interface (``links.base.MeterLink``).
"""
