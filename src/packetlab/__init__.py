"""packetlab: PacketLab measurement endpoints, controllers and broker.

Wire-compatible with the public PacketLab reference implementation, with
Scriptroute's network guardian and public script server carried in.
"""

__version__ = "0.1.0"
