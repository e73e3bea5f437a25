"""Measurements on the controller API (layer 3): send_train and the tools built on it.

Everything here runs in the controller and drives one endpoint through an
:class:`~packetlab.controller.api.EndpointHandle`; all times are the endpoint's kernel timestamps.
"""
