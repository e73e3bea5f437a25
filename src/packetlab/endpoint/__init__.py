"""packetlab.endpoint: the measurement endpoint (layer 2)."""
