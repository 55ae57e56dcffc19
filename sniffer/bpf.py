"""Kernel packet filters: tcpdump expressions compiled by libpcap, attached to a packet socket.

Live capture reads raw IP packets (a SOCK_DGRAM packet socket: the kernel strips the link
header), so expressions are compiled for the raw-IP link type. By default only TCP segments that
carry data or SYN/FIN/RST reach user space: pure ACKs are most of the packets and none of the
content.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket

DLT_RAW = 12  # what pcap_compile expects for packets that start with the IP header
SO_ATTACH_FILTER = 26
SNAPLEN = 262144

# IPv4: flags at tcp[13]; payload = total length - IP header - TCP header.
# IPv6 (without extension headers): TCP at byte 40, payload = payload length - TCP header.
CONTENT = (
    "(ip and tcp and (tcp[13] & 7 != 0 or "
    "ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0)) or "
    "(ip6 and ip6[6] = 6 and (ip6[53] & 7 != 0 or ip6[4:2] - ((ip6[52] & 0xf0) >> 2) != 0))"
)


class FilterError(ValueError):
    """The expression does not compile, or libpcap is missing."""


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Insn))]


def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise FilterError("libpcap is not installed (Debian: apt-get install libpcap0.8)")
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_Program),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


def expression(user: str | None) -> str:
    """The default content filter, narrowed by the user's tcpdump expression if any."""
    return f"({CONTENT}) and ({user})" if user else CONTENT


def compile_filter(text: str) -> list[tuple[int, int, int, int]]:
    """The BPF instructions (code, jt, jf, k) for a tcpdump expression over raw IP packets."""
    lib = _libpcap()
    handle = lib.pcap_open_dead(DLT_RAW, SNAPLEN)
    program = _Program()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), text.encode(), 1, 0xFFFFFFFF) != 0:
            reason = lib.pcap_geterr(handle).decode(errors="replace")
            raise FilterError(f"bad filter expression: {reason}")
        insns = [program.bf_insns[i] for i in range(program.bf_len)]
        code = [(i.code, i.jt, i.jf, i.k) for i in insns]
        lib.pcap_freecode(ctypes.byref(program))
        return code
    finally:
        lib.pcap_close(handle)


def attach(sock: socket.socket, code: list[tuple[int, int, int, int]]) -> None:
    """Run the program in the kernel for every packet the socket would receive."""
    insns = (_Insn * len(code))(*(_Insn(*insn) for insn in code))
    program = _SockFprog(len(code), ctypes.cast(insns, ctypes.POINTER(_Insn)))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(program))
