"""packetlab.controller: the experiment controller (layer 2), the job of pktxpmgr."""
