"""amidcc demo: the gateway, a broker and a simulated fleet in one command."""
