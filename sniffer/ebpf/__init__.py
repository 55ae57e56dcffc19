"""Live, the kernel reports who opens each TCP connection (eBPF): `owners` loads the programs of
`connections.bpf.c` (compiled by `build`, loaded through `libbpf`) and feeds their reports to
`procnet.SocketOwners`. Without eBPF (`host` says why), /proc names the processes. See
docs/ebpf.md.
"""
