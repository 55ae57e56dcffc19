"""The few calls of libbpf (Debian's libbpf.so.1) that load eBPF programs, attach them and read
their ring buffers, through ctypes.

`BpfObject` is one compiled object: opened, the chosen programs loaded and attached by their
section names (raw_tp/..., fexit/..., uprobe/PATH:FUNCTION, ...), everything detached and freed by
`close`. A program that needs options to attach (a uprobe on a library found at run time) is
loaded with `attach=False`, then attached through `program(name)` and kept with `keep`.
`RingBuffer` hands each record of a BPF ring buffer to a Python function.

libbpf 1.x returns NULL or a negative number and sets errno; every failure becomes one
`LibbpfError` line. libbpf's own messages are kept in `log`, not printed.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import os
import select
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

LIBRARY = "libbpf.so.1"
LOG_LINES = 200  # libbpf's last messages (a verifier's log is one message)

# int (*)(enum libbpf_print_level level, const char *format, va_list args)
PRINT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
# int (*)(void *ctx, void *data, size_t size)
SAMPLE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

P = ctypes.c_void_p


class UprobeOptions(ctypes.Structure):
    """libbpf 1.1's struct bpf_uprobe_opts."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("ref_ctr_offset", ctypes.c_size_t),
        ("bpf_cookie", ctypes.c_uint64),
        ("retprobe", ctypes.c_bool),
        ("func_name", ctypes.c_char_p),
    ]


PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "libbpf_set_print": (P, [PRINT]),
    "bpf_object__open_file": (P, [ctypes.c_char_p, P]),
    "bpf_object__load": (ctypes.c_int, [P]),
    "bpf_object__close": (None, [P]),
    "bpf_object__next_program": (P, [P, P]),
    "bpf_object__find_program_by_name": (P, [P, ctypes.c_char_p]),
    "bpf_object__find_map_fd_by_name": (ctypes.c_int, [P, ctypes.c_char_p]),
    "bpf_program__name": (ctypes.c_char_p, [P]),
    "bpf_program__set_autoload": (ctypes.c_int, [P, ctypes.c_bool]),
    "bpf_program__attach": (P, [P]),
    "bpf_link__destroy": (ctypes.c_int, [P]),
    # (program, pid (-1: all), binary, offset, options)
    "bpf_program__attach_uprobe_opts": (
        P,
        [P, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(UprobeOptions)],
    ),
    "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, P, P]),
    "libbpf_num_possible_cpus": (ctypes.c_int, []),
    "ring_buffer__new": (P, [ctypes.c_int, SAMPLE, P, P]),
    "ring_buffer__consume": (ctypes.c_int, [P]),
    "ring_buffer__epoll_fd": (ctypes.c_int, [P]),
    "ring_buffer__free": (None, [P]),
}

log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)


class LibbpfError(Exception):
    """libbpf is missing, or refused: one line for the user."""


def _keep_message(level: int, text: bytes | None, arguments: int | None) -> int:
    buffer = ctypes.create_string_buffer(4096)
    # a va_list is handed on as the pointer it arrives as (x86-64, arm64 pass it by reference)
    _libc().vsnprintf(buffer, len(buffer), text, arguments)
    log.append(buffer.value.decode(errors="replace").rstrip("\n"))
    return 0


_PRINTER = PRINT(_keep_message)  # referenced for as long as libbpf may call it


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.vsnprintf.restype = ctypes.c_int
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    return libc


@functools.cache
def library() -> ctypes.CDLL:
    """libbpf, its functions typed, its messages kept in `log`."""
    try:
        lib = ctypes.CDLL(LIBRARY, use_errno=True)
    except OSError:
        raise LibbpfError(f"{LIBRARY} not found (apt-get install libbpf1)") from None
    for name, (restype, argtypes) in PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    lib.libbpf_set_print(_PRINTER)
    return lib


def _failed(what: str, code: int | None = None) -> LibbpfError:
    """The error of the call that just failed: its negative return, else errno."""
    number = -code if code is not None and code < 0 else ctypes.get_errno()
    return LibbpfError(f"{what}: {os.strerror(number)}")


class BpfObject:
    """A compiled object: the programs named in `programs` (all by default) loaded and, unless
    `attach` is false, attached as their section names say."""

    def __init__(
        self, path: Path, programs: Iterable[str] | None = None, attach: bool = True
    ) -> None:
        self.lib = library()
        self.name = path.name
        self.links: list[int] = []
        self.handle = self.lib.bpf_object__open_file(str(path).encode(), None)
        if not self.handle:
            raise _failed(f"opening {self.name}")
        try:
            wanted = set(programs) if programs is not None else None
            chosen = [p for p in self._programs() if wanted is None or self._name(p) in wanted]
            for program in self._programs():
                self.lib.bpf_program__set_autoload(program, program in chosen)
            code = self.lib.bpf_object__load(self.handle)
            if code:
                raise _failed(f"loading {self.name}", code)
            for program in chosen if attach else ():
                self.keep(self.lib.bpf_program__attach(program), self._name(program))
        except LibbpfError:
            self.close()
            raise

    def _programs(self) -> Iterator[int]:
        program = None
        while program := self.lib.bpf_object__next_program(self.handle, program):
            yield program

    def _name(self, program: int) -> str:
        return str(self.lib.bpf_program__name(program).decode())

    def program(self, name: str) -> int:
        """A program of the object, for a caller that attaches it itself."""
        program = self.lib.bpf_object__find_program_by_name(self.handle, name.encode())
        if not program:
            raise LibbpfError(f"{self.name}: no program {name}")
        return int(program)

    def keep(self, link: int | None, what: str) -> None:
        """A link just made (NULL: the attachment failed), to be destroyed by `close`."""
        if not link:
            raise _failed(f"attaching {what}")
        self.links.append(link)

    def attach(self, name: str) -> None:
        """Attach program `name` as its section name says (a tracepoint, say)."""
        self.keep(self.lib.bpf_program__attach(self.program(name)), name)

    def attach_uprobe(self, name: str, path: str, function: str, returning: bool) -> None:
        """Attach program `name` to the entry (or the return) of `function` in the ELF file at
        `path`, for every process that maps it."""
        size = ctypes.sizeof(UprobeOptions)
        options = UprobeOptions(size, 0, 0, returning, function.encode())
        link = self.lib.bpf_program__attach_uprobe_opts(
            self.program(name), -1, path.encode(), 0, options
        )
        self.keep(link, f"{function} in {path}")

    def per_cpu_total(self, map_name: str) -> int:
        """The sum over the CPUs of a per-CPU array's first (u64) value."""
        counts = (ctypes.c_uint64 * max(self.lib.libbpf_num_possible_cpus(), 1))()
        key = ctypes.c_uint32(0)
        if self.lib.bpf_map_lookup_elem(self.map_fd(map_name), ctypes.byref(key), counts):
            return 0
        return sum(counts)

    def map_fd(self, name: str) -> int:
        fd = self.lib.bpf_object__find_map_fd_by_name(self.handle, name.encode())
        if fd < 0:
            raise LibbpfError(f"{self.name}: no map {name}")
        return int(fd)

    def close(self) -> None:
        """Detach every program, then free the object (its maps and programs)."""
        while self.links:
            self.lib.bpf_link__destroy(self.links.pop())
        if self.handle:
            self.lib.bpf_object__close(self.handle)
            self.handle = None


class RingBuffer:
    """A BPF ring buffer map whose records go to `handle` (as bytes) when `consume` is called.
    libbpf's ring buffer is not for two readers at once: callers serialise `consume`."""

    def __init__(self, map_fd: int, handle: Callable[[bytes], None]) -> None:
        self.lib = library()
        self.handle = handle
        self.sample = SAMPLE(self._sample)  # referenced while libbpf holds it
        self.ring = self.lib.ring_buffer__new(map_fd, self.sample, None, None)
        if not self.ring:
            raise _failed("opening the ring buffer")
        self.poller = select.poll()
        self.poller.register(self.lib.ring_buffer__epoll_fd(self.ring), select.POLLIN)

    def _sample(self, context: int | None, data: int | None, size: int) -> int:
        try:
            self.handle(ctypes.string_at(data, size) if data else b"")
        except Exception:  # noqa: BLE001 - an exception cannot cross into C: the record is lost
            return 0
        return 0

    def wait(self, seconds: float) -> bool:
        """Whether records arrived within `seconds` (without reading them)."""
        return bool(self.poller.poll(seconds * 1000))

    def consume(self) -> None:
        """Hand every record waiting to `handle`."""
        if self.ring:
            self.lib.ring_buffer__consume(self.ring)

    def close(self) -> None:
        if self.ring:
            self.lib.ring_buffer__free(self.ring)
            self.ring = None
