"""packetlab.wire: the pktlab wire protocol, sans-IO (layer 0: no sockets, no clocks)."""

from packetlab.wire._errors import EncodeError, MalformedMessage, ProtocolError, WireError
from packetlab.wire.codec import MessageReader, decode, decode_body, encode, encode_body
from packetlab.wire.codes import (
    ErrId,
    Family,
    MsgType,
    NctlCommand,
    NotifMask,
    NsendErr,
    NstatCode,
    Proto,
    SocketState,
)
from packetlab.wire.messages import (
    Cdata,
    Cont,
    End,
    Linfo,
    Mdata,
    Message,
    Mread,
    Mwrite,
    Nblock,
    Ncap,
    Nclose,
    Nctl,
    Ndata,
    Ndrop,
    Nopen,
    Nsend,
    Nstat,
    Ntag,
    Result,
    Resumd,
    Start,
    Suspd,
    UnknownMessage,
    Xcert,
    Xnotify,
    Xpub,
    Xreg,
    Xsub,
    Yield,
    addr_bytes,
    addr_text,
)

__all__ = [
    "Cdata", "Cont", "EncodeError", "End", "ErrId", "Family", "Linfo", "MalformedMessage",
    "Mdata", "Message", "MessageReader", "Mread", "MsgType", "Mwrite", "Nblock", "Ncap",
    "Nclose", "Nctl", "NctlCommand", "Ndata", "Ndrop", "NotifMask", "Nopen", "Nsend",
    "NsendErr", "Nstat", "NstatCode", "Ntag", "Proto", "ProtocolError", "Result", "Resumd",
    "SocketState", "Start", "Suspd", "UnknownMessage", "WireError", "Xcert", "Xnotify", "Xpub",
    "Xreg", "Xsub", "Yield", "addr_bytes", "addr_text", "decode", "decode_body", "encode",
    "encode_body",
]
