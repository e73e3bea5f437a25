"""The `packetlab` command: thin click shells over the layers."""
