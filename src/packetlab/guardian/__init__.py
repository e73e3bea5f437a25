"""packetlab.guardian: Scriptroute's network guardian as endpoint policy.

Pure decisions (``now`` is always a parameter) plus persistent accounting (SQLite) and a packet
log (pcapng). Layer 1: imports wire and pki only; no sockets. See guard.py for the stages.
"""

from packetlab.guardian._errors import (
    GuardianConfigError,
    GuardianError,
    OptOutFormatError,
    PacketLogError,
    UsageStoreError,
)
from packetlab.guardian.buckets import DestinationBuckets, SlidingWindow, TokenBucket
from packetlab.guardian.config import (
    CERTIFIED,
    PUBLIC,
    GuardianConfig,
    LogConfig,
    OptOutConfig,
    RateProfile,
    SourcePolicy,
)
from packetlab.guardian.experiment import ExperimentGuard, ExperimentIdentity
from packetlab.guardian.guard import Guardian
from packetlab.guardian.optout import (
    OptOut,
    OptOutSource,
    OptOutTable,
    parse_optout_entry,
    parse_optout_text,
)
from packetlab.guardian.packet_log import LogFile, PacketLog
from packetlab.guardian.policy import SourceFilter
from packetlab.guardian.prefixes import Prefix, PrefixSet, parse_prefix
from packetlab.guardian.probe import ALLOW, Probe, Verdict, make_probe
from packetlab.guardian.traffic_index import IndexedFile, TracebackRow, TrafficIndex
from packetlab.guardian.usage import Lease, Usage, UsageStore

__all__ = [
    "ALLOW",
    "CERTIFIED",
    "PUBLIC",
    "DestinationBuckets",
    "ExperimentGuard",
    "ExperimentIdentity",
    "Guardian",
    "GuardianConfig",
    "GuardianConfigError",
    "GuardianError",
    "IndexedFile",
    "Lease",
    "LogConfig",
    "LogFile",
    "OptOut",
    "OptOutConfig",
    "OptOutFormatError",
    "OptOutSource",
    "OptOutTable",
    "PacketLog",
    "PacketLogError",
    "Prefix",
    "PrefixSet",
    "Probe",
    "RateProfile",
    "SlidingWindow",
    "SourceFilter",
    "SourcePolicy",
    "TokenBucket",
    "TracebackRow",
    "TrafficIndex",
    "Usage",
    "UsageStore",
    "UsageStoreError",
    "Verdict",
    "make_probe",
    "parse_optout_entry",
    "parse_optout_text",
    "parse_prefix",
]
