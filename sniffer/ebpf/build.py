"""Compile the eBPF programs: a vmlinux.h dumped from the running kernel's BTF by bpftool, then
clang -target bpf, CO-RE (the object runs on other kernels: libbpf relocates its field
accesses against theirs when it loads it).

Objects go into a cache directory under a name keyed by the source's hash, so an edited source
is rebuilt and an installed package (read-only) needs no write access to itself:

    python3 -m sniffer.ebpf.build            # build what is missing, print the object's path
    python3 -m sniffer.ebpf.build --force    # build again
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

SOURCE = Path(__file__).with_name("connections.bpf.c")
SOURCES = (SOURCE, Path(__file__).with_name("tls.bpf.c"))  # what `main` builds
BTF = Path("/sys/kernel/btf/vmlinux")
FLAGS = ("-target", "bpf", "-O2", "-g", "-Wall")
ARCHES = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "powerpc"}
ARCHES |= {"s390x": "s390", "riscv64": "riscv"}  # __TARGET_ARCH_*, for bpf_tracing.h


class BuildError(Exception):
    """The object cannot be built here: one line for the user."""


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "osflow-sniff" / "ebpf"


def _arch_flag() -> str:
    machine = platform.machine()
    if machine not in ARCHES:
        raise BuildError(f"no eBPF build for {machine}")
    return f"-D__TARGET_ARCH_{ARCHES[machine]}"


def object_path(source: Path = SOURCE) -> Path:
    """Where the object built from `source` (as it is now) is kept."""
    digest = hashlib.sha256(source.read_bytes())
    for header in sorted(source.parent.glob("*.h")):  # what it may include (ends.h)
        digest.update(header.read_bytes())
    digest.update(" ".join(FLAGS).encode())
    stem = source.name.removesuffix(".bpf.c")
    return cache_directory() / f"{stem}-{digest.hexdigest()[:16]}.bpf.o"


def build(sources: tuple[Path, ...] = SOURCES) -> list[Path]:
    """Compile `sources` into their cache paths (each replaced whole: a reader never sees
    half), against one vmlinux.h."""
    missing = [tool for tool in ("clang", "bpftool") if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} missing; "
            "apt-get install clang bpftool libbpf-dev"
        )
    if not BTF.exists():
        raise BuildError(f"no kernel BTF to build against ({BTF})")
    targets = [object_path(source) for source in sources]
    cache = cache_directory()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        header = Path(work) / "vmlinux.h"
        with header.open("wb") as stream:
            _run(["bpftool", "btf", "dump", "file", str(BTF), "format", "c"], stdout=stream)
        for source, target in zip(sources, targets, strict=True):
            built = Path(work) / target.name
            command = ["clang", *FLAGS, _arch_flag(), "-I", work, "-c", str(source)]
            _run([*command, "-o", str(built)])
            os.replace(built, target)
    return targets


def _run(command: list[str], stdout: IO[Any] | int = subprocess.DEVNULL) -> None:
    result = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True)
    if result.returncode:
        errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
        detail = (errors or result.stderr.splitlines() or ["failed"])[0]
        raise BuildError(f"{command[0]}: {detail.strip()}")


def compiled(source: Path = SOURCE) -> Path:
    """The object for `source`: from the cache, else built now, with every other object
    missing (about a second)."""
    target = object_path(source)
    if target.exists():
        return target
    missing = tuple(other for other in SOURCES if not object_path(other).exists())
    try:
        build(missing if source in missing else (source, *missing))
    except BuildError as error:
        raise BuildError(f"{source.name} is not compiled: {error}") from None
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m sniffer.ebpf.build", description="Compile osflow-sniff's eBPF programs."
    )
    parser.add_argument("--force", action="store_true", help="build even if the object exists")
    options = parser.parse_args(argv)
    try:
        targets = build() if options.force else [compiled(source) for source in SOURCES]
    except (BuildError, OSError) as error:
        print(f"osflow-sniff: cannot build the eBPF object: {error}", file=sys.stderr)
        return 1
    print("\n".join(map(str, targets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
