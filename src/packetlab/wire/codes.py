"""Numbers of the pktlab wire protocol (reference sections 3.1, 3.2 and 4)."""

from __future__ import annotations

import enum

HEADER_LEN = 4
MAX_BODY_LEN = 0xFFFFFF
MREAD_MAX = 0x10000
NDATA_MAX = 0x10000
NSEND_MAX = 0xFFFFFF - 31
LINFO_INFO_MAX = 0x10000
MAX_SOCKETS = 256
SETUP_TIMEOUT_NS = 10_000_000_000
DEFAULT_EXP_PORT = 20556
DEFAULT_SUB_PORT = 20557
CHANNEL_MAX_LEN = 32


class MsgType(enum.IntEnum):
    CDATA = 0x20
    START = 0x21
    END = 0x22
    YIELD = 0x23
    CONT = 0x24
    MREAD = 0x28
    MWRITE = 0x29
    NOPEN = 0x2A
    NCLOSE = 0x2B
    NSEND = 0x2C
    NCAP = 0x2D
    NCTL = 0x2E
    XCERT = 0x30
    XPUB = 0x31
    XSUB = 0x38
    RESULT = 0x40
    MDATA = 0x41
    NTAG = 0x60
    NSTAT = 0x61
    NDATA = 0x62
    NDROP = 0x63
    NBLOCK = 0x64
    LINFO = 0x65
    SUSPD = 0x68
    RESUMD = 0x69
    XNOTIFY = 0x70
    XREG = 0x80

    @property
    def is_request(self) -> bool:
        return 0x20 <= self <= 0x3F

    @property
    def is_response(self) -> bool:
        return 0x40 <= self <= 0x5F

    @property
    def is_notification(self) -> bool:
        return 0x60 <= self <= 0x7F


class ErrId(enum.IntEnum):
    """`result` error identifiers."""

    SUCCESS = 0x00
    ECTLBADMSG = 0x10
    ECTLNOTSUP = 0x11
    ECTLMONREJ = 0x12
    ECTLMONUKN = 0x13
    ECRTBADHDAT = 0x20
    ECRTNOHDAT = 0x21
    ECRTBADFRM = 0x22
    ECRTNOSPACE = 0x23
    ECRTBADHINT = 0x24
    ESYSNOBUFS = 0x30
    ESYSNOPERM = 0x31
    ESKTINUSE = 0x32
    ESKTNOTOPEN = 0x33
    ESKTNOPRFAM = 0x34
    ESKTNOPROTO = 0x35
    ESKTNOADDR = 0x36
    ESKTNOMATCH = 0x37
    ESKTBADFILT = 0x38
    ESKTPKTDENY = 0x39
    ESKTOPNDENY = 0x3A
    ETCPNOPORT = 0x40
    EPKTNOTSENT = 0x41
    EUDPNOPORT = 0x42
    EPKTTRUNC = 0x43
    ENORES = 0x44
    EMEMBADADR = 0x48
    EPUBBADCHL = 0x50
    EPUBBADCHN = 0x51
    EPUBBADADDR = 0x52
    EPUBBADPR = 0x53
    EPUBBADXD = 0x54
    ESUBBADCHL = 0x60
    ESUBBADCHN = 0x61
    ESUBBADDA = 0x62
    EUNKFAULT = 0xFFFF


class Family(enum.IntEnum):
    IPV4 = 4
    IPV6 = 6

    @property
    def addr_len(self) -> int:
        return 4 if self is Family.IPV4 else 16


class Proto(enum.IntEnum):
    RAW = 0x00
    TCP = 0x06
    UDP = 0x11


class NstatCode(enum.IntEnum):
    ESTABLISHED = 0
    RESET = 1
    TIMEOUT = 2
    PEERCLOSED = 3
    UNKNOWN = 0xFF


class SocketState(enum.IntEnum):
    """vmem STAT (int8)."""

    FREE = 0
    OPENING = 1
    OPEN = 2
    EOF = 3
    WFIN = 4
    END = 5
    REFUSED = -1
    RESET = -2
    TIMEDOUT = -3
    UNREACH = -4
    UNKFAULT = -128


class NsendErr(enum.IntEnum):
    """vmem NSENDERR (int8)."""

    SUCCESS = 0
    NORES = 1
    BADPKT = 2
    TIMEDOUT = 3
    RESET = 4
    UNREACH = 5
    WFIN = 6
    UNKFAULT = 127


class NctlCommand(enum.IntEnum):
    TCP_FIN = 1


class NotifMask(enum.IntFlag):
    """Per-socket NOTIFMASK bits: a set bit holds that notification type until cleared."""

    NONE = 0
    NTAG = 1 << 1
    NSTAT = 1 << 2
    NDATA = 1 << 3
    NDROP = 1 << 4
    NBLOCK = 1 << 5
