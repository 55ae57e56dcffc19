"""Live, from the kernel (eBPF): who opens each TCP connection, and the plaintext of TLS ones.

`owners` loads the programs of `connections.bpf.c` and feeds their reports to
`procnet.SocketOwners`; `plaintext` attaches those of `tls.bpf.c` to libssl and hands the pipeline
what OpenSSL wrote and read (`tls`). `build` compiles them CO-RE, `libbpf` loads them, `ends`
reads the socket ends both report, `host` says why they cannot run (then /proc names processes
and TLS stays unread). See docs/ebpf.md and docs/tls.md.
"""
