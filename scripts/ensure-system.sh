#!/bin/sh
# Install the Debian packages packetlab needs, only if something is missing. Quiet otherwise.
set -eu
need=""
command -v python3 >/dev/null 2>&1 || need="$need python3"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || {
    echo "packetlab needs Python >= 3.11 (Debian 12 ships 3.11)" >&2; exit 1; }
# libpcap compiles tcpdump-style capture expressions; iproute2 builds testbeds; tcpdump is a
# capture oracle in the tests.
for lib in libpcap.so.0.8; do
    ldconfig -p 2>/dev/null | grep -q "$lib" || need="$need libpcap0.8"
done
command -v ip >/dev/null 2>&1 || need="$need iproute2"
command -v tcpdump >/dev/null 2>&1 || need="$need tcpdump"
# Measurement peers in the tests and benches: scamper and traceroute (bench/trace_vs_scamper),
# NSD (a real DNS server in testbed nodes).
command -v scamper >/dev/null 2>&1 || need="$need scamper"
[ -x /usr/sbin/traceroute ] || need="$need traceroute"
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || need="$need nsd"
if [ -n "$need" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing:$need; install them (as root: apt-get install$need)" >&2
        exit 1
    fi
    echo "installing Debian packages:$need"
    apt-get update -qq
    # no service starts on install (NSD's would): the tests start their own, in namespaces
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null || status=$?
    [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
    [ -z "${status:-}" ] || exit "$status"
fi
