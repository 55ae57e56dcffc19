"""One record of everything the pipeline counted: packets, drops, gaps and what it could not parse.

Stages increment counters instead of raising, so a damaged capture still yields every call it can,
and the summary tells the user what was lost and why (an empty result always comes with a reason).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Stats:
    packets: int = 0
    bytes: int = 0
    not_ip: int = 0
    not_tcp: int = 0
    ip_fragments: int = 0
    unsupported_link: int = 0
    snapped_headers: int = 0
    snapped_packets: int = 0  # payload cut by the snap length
    connections: int = 0
    duplicate_segments: int = 0  # retransmissions and repeats dropped
    overlapping_segments: int = 0  # partly new, trimmed
    out_of_order_segments: int = 0  # buffered until the hole before them filled
    gaps: int = 0
    gap_bytes: int = 0
    non_http_streams: int = 0
    http_errors: int = 0  # unparseable bytes that forced a resync
    skipped_bytes: int = 0  # bytes discarded while resyncing to a message boundary
    requests: int = 0
    responses: int = 0
    orphan_responses: int = 0  # responses whose request was not captured
    duplicate_exchanges: int = 0  # the same exchange in two hosts' captures, counted once
    late_hops: int = 0  # hops of a call that had already ended: a separate call
    calls: int = 0
    incomplete_calls: int = 0
    overdue_calls: int = 0  # unanswered after --max-wait: numbered without waiting for the answer
    tls_connections: int = 0  # read from inside TLS: the plaintext from the TLS library
    encrypted_streams: int = 0  # TLS whose plaintext was not read (no eBPF, or not OpenSSL)

    def count(self, name: str, n: int = 1) -> None:
        setattr(self, name, getattr(self, name) + n)

    def summary(self) -> str:
        """One line for the terminal, naming only the counters that are not zero."""
        main = (
            f"{self.packets} packets, {self.connections} connections, "
            f"{self.requests} requests, {self.responses} responses, {self.calls} calls"
        )
        skip = {"packets", "bytes", "connections", "requests", "responses", "calls"}
        extra = [
            f"{f.name.replace('_', ' ')}: {getattr(self, f.name)}"
            for f in fields(self)
            if f.name not in skip and getattr(self, f.name)
        ]
        return main + (" (" + ", ".join(extra) + ")" if extra else "")
