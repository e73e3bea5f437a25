"""The measure layer's exceptions."""

from __future__ import annotations


class MeasurementError(Exception):
    """A measurement could not be made (bad arguments, or a failure worth a clear message)."""


class EndpointCannot(MeasurementError):
    """The endpoint lacks what a tool needs (raw sockets, an address family, a transport)."""
