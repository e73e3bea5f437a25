"""Controller-chain (pubcmd + exppriv) verifications per second.

Two figures, both parsing both certificates from DER at every verification and running the
whole chain walk (order, profile, types, signatures, validity, pathLen, limits, peer binding):

- verifies_per_s: cold. Every verification is of a different chain (a pool of distinct keys and
  certificates), with no signature cache: two Ed25519 checks each time.
- cached_verifies_per_s: steady state of an endpoint that sees the same controller chain at
  every session, with a SignatureCache (signatures already verified over the same bytes are not
  re-checked; everything else is).

The best of several rounds is reported; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from packetlab import pki

NOT_AFTER = 2147483647


def make_chain(eop: pki.keys.Ed25519PrivateKey) -> tuple[list[bytes], bytes]:
    exper, xc = pki.generate_private_key(), pki.generate_private_key()
    exppriv = pki.build_certificate(
        cert_type=pki.CertType.EXPPRIV,
        signer=eop,
        subject=exper.public_key(),
        not_before=0,
        not_after=NOT_AFTER,
        limits=pki.parse_limits("max_send_pkt=1000000;valid_dest=198.18.0.0/15;"),
    )
    pubcmd = pki.build_certificate(
        cert_type=pki.CertType.PUBCMD,
        signer=exper,
        subject=xc.public_key(),
        not_before=0,
        not_after=NOT_AFTER,
    )
    return [pubcmd.der, exppriv.der], pki.raw_public_key(xc)


def best_rate(run_batch: Callable[[], int], seconds: float, rounds: int, name: str) -> float:
    best = 0.0
    for round_no in range(rounds):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            count += run_batch()
        rate = count / (time.perf_counter() - start)
        best = max(best, rate)
        print(f"{name} round {round_no + 1}: {rate:,.0f} verifications/s")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is reported")
    parser.add_argument(
        "--pool",
        type=int,
        default=1000,
        help="distinct chains for the cold run (more than the parse memo holds)",
    )
    args = parser.parse_args()
    eop = pki.generate_private_key()
    trust = pki.TrustAnchors([eop.public_key()])
    pool = [make_chain(eop) for _ in range(args.pool)]
    now = time.time()

    def cold() -> int:
        for ders, peer in pool:
            pki.verify_controller_chain(ders, trust, now=now, peer_key=peer)
        return len(pool)

    cache = pki.SignatureCache()
    ders, peer = pool[0]

    def cached() -> int:
        for _ in range(200):
            pki.verify_controller_chain(ders, trust, now=now, peer_key=peer, cache=cache)
        return 200

    cold_rate = best_rate(cold, args.seconds, args.rounds, "cold")
    cached_rate = best_rate(cached, args.seconds, args.rounds, "cached")
    print(
        json.dumps(
            {"verifies_per_s": round(cold_rate), "cached_verifies_per_s": round(cached_rate)}
        )
    )


if __name__ == "__main__":
    main()
