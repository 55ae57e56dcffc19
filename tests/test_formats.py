"""Capture formats and link types: the seed capture rewritten into each gives the same flow."""

from __future__ import annotations

import struct

import mutate
import pytest
from conftest import PCAPS, assert_seed_document, command

SEED = PCAPS / "image-show.pcap"
ETHERNET_HEADER = 14


def frames():
    packets, linktype = mutate.read(str(SEED))
    assert linktype == 1
    return packets


def pcap(path, records, linktype, order="<", nano=False):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    with open(path, "wb") as out:
        out.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for ts, data in records:
            sec = int(ts)
            frac = round((ts - sec) * (1e9 if nano else 1e6))
            out.write(struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data)


def pcapng(path, records, linktype, order="<"):
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        length = len(body) + 12
        return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)

    with open(path, "wb") as out:
        out.write(block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
        tsresol = struct.pack(order + "HHB3x", 9, 1, 9) + struct.pack(order + "HH", 0, 0)
        out.write(block(1, struct.pack(order + "HHI", linktype, 0, 262144) + tsresol))
        for ts, data in records:
            ticks = round(ts * 1e9)
            header = struct.pack(
                order + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
            )
            out.write(block(6, header + data))


def ipv6(frame: bytes) -> bytes:
    """The same TCP segment over IPv6 between ::1 and ::1 (ports tell the endpoints apart)."""
    ip = frame[ETHERNET_HEADER:]
    tcp = ip[(ip[0] & 0x0F) * 4 : struct.unpack("!H", ip[2:4])[0]]
    loopback = b"\0" * 15 + b"\1"
    return struct.pack("!IHBB", 0x60000000, len(tcp), 6, 64) + loopback + loopback + tcp


def relink(kind: str, frame: bytes) -> bytes:
    ip = frame[ETHERNET_HEADER:]
    version6 = ip[0] >> 4 == 6
    proto = 0x86DD if version6 else 0x0800
    if kind == "sll":
        return struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, proto) + ip
    if kind == "sll2":
        return struct.pack("!HHIHBB8s", proto, 0, 1, 772, 0, 6, b"\0" * 8) + ip
    if kind == "null":
        return struct.pack("<I", 30 if version6 else 2) + ip
    if kind == "loop":
        return struct.pack("!I", 30 if version6 else 2) + ip
    if kind == "raw":
        return ip
    if kind == "ethernet":
        return frame
    raise ValueError(kind)


LINKTYPES = {"ethernet": 1, "sll": 113, "sll2": 276, "null": 0, "loop": 108, "raw": 101}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    from click.testing import CliRunner

    from sniffer.cli import main

    out = tmp_path_factory.mktemp("baseline")
    CliRunner().invoke(main, ["-r", str(SEED), "-o", str(out), "-q"])
    return (out / "body.md").read_text()


@pytest.mark.parametrize(
    "variant",
    [
        ("pcap", "<", False),
        ("pcap", ">", False),
        ("pcap", "<", True),
        ("pcap", ">", True),
        ("pcapng", "<", True),
        ("pcapng", ">", True),
    ],
    ids=lambda v: f"{v[0]}-{'le' if v[1] == '<' else 'be'}-{'ns' if v[2] else 'us'}",
)
def test_file_formats(sniff, tmp_path, baseline, variant):
    kind, order, nano = variant
    records = [(p.ts, p.data) for p in frames()]
    path = tmp_path / f"seed.{kind}"
    if kind == "pcap":
        pcap(path, records, 1, order, nano)
    else:
        pcapng(path, records, 1, order)
    run = sniff(path)
    assert run.exit_code == 0
    assert run.read("body.md") == baseline
    original = sniff(SEED).calls()
    assert [c["request_time"] for c in run.calls()] == [c["request_time"] for c in original]


@pytest.mark.parametrize("link", list(LINKTYPES))
@pytest.mark.parametrize("ip", ["ipv4", "ipv6"])
def test_link_types_and_ip_versions(sniff, tmp_path, baseline, link, ip):
    records = []
    for packet in frames():
        frame = packet.data
        if ip == "ipv6":
            frame = b"\0" * 12 + b"\x86\xdd" + ipv6(frame)
        records.append((packet.ts, relink(link, frame)))
    path = tmp_path / f"seed-{link}-{ip}.pcap"
    pcap(path, records, LINKTYPES[link])
    run = sniff(path)
    assert run.read("body.md") == baseline
    if ip == "ipv6":
        assert run.calls()[0]["hops"][0]["server"] == "[::1]:80"


def test_files_are_merged_in_time_order(sniff, tmp_path):
    """Two captures of one host, split by connection, merge back into the same flow."""
    packets = frames()
    keystone_only = [
        p for p in packets if 60999 not in (mutate.tcp_of(p)[2].sport, mutate.tcp_of(p)[2].dport)
    ]
    glance_only = [p for p in packets if p not in keystone_only]
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    mutate.write(str(first), keystone_only, 1)
    mutate.write(str(second), glance_only, 1)
    merged = sniff(first, second)
    assert merged.outputs() == sniff(SEED).outputs()


def test_not_a_capture_is_a_one_line_error(tmp_path):
    for content in (b"", b"hello, this is text\n" * 10, b"\x0a\x0d\x0d\x0a" + b"\xff" * 40):
        path = tmp_path / "bad.pcap"
        path.write_bytes(content)
        result = command("-r", str(path))
        assert result.returncode != 0
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "not a pcap or pcapng file" in result.stderr or "cut short" in result.stderr


def test_missing_file_is_a_one_line_error(tmp_path):
    result = command("-r", str(tmp_path / "nope.pcap"))
    assert result.returncode != 0
    assert result.stderr.strip().endswith("No such file or directory")
    assert result.stderr.count("\n") == 1


def test_unsupported_link_type_is_counted_not_fatal(sniff, tmp_path):
    path = tmp_path / "weird.pcap"
    pcap(path, [(1.0, b"\0" * 60)], 147)  # LINKTYPE_USER0
    run = sniff(path)
    assert run.exit_code == 0
    assert "unsupported link: 1" in run.stderr
    assert "no TCP connections" in run.stderr


@pytest.mark.parametrize("name", ["image-show-any.pcap", "image-show-lo.pcapng"])
def test_captures_written_by_tcpdump_and_tshark(sniff, name):
    """Real files from `tcpdump -i any` (Linux cooked v2) and tshark (pcapng) of the same lab."""
    run = sniff(PCAPS / name, options=("--show-secrets", "--lang", "ko"))
    assert_seed_document(run.read("body.md"))
