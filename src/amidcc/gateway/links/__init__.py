"""Link adapters: every way the gateway reaches a meter, behind one interface (:mod:`.base`)."""
