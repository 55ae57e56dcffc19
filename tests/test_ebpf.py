"""Who owns each connection, from the kernel (eBPF): a client gone within a millisecond of its
request is named by its command line; without eBPF, one notice and /proc, as before.

The tests that load the programs need root, BTF and the compiled object (`python3 -m
sniffer.ebpf.build`); without them they skip, saying why, unless OSFLOW_REQUIRE_EBPF is set (CI),
where they fail instead. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sniffer.ebpf import build, host, libbpf
from sniffer.ebpf.owners import REPORT, ConnectionReports, Unavailable, parse
from sniffer.procnet import SocketOwners, service_of

# an `openstack` client that leaves within a millisecond of connecting: it sends its request,
# says how long it took since connect() began (µs), and exits without waiting for the answer
# (--linger: it reads the answer and stays a second, long enough for /proc to find it)
CLIENT = """\
import os, socket, sys, time
port = int(sys.argv[sys.argv.index("--port") + 1])
family, host = socket.AF_INET, "127.0.0.1"
if "--ipv6" in sys.argv:  # an IPv6 socket, to 127.0.0.1 as ::ffff:127.0.0.1
    family, host = socket.AF_INET6, "::ffff:127.0.0.1"
agent = b"User-Agent: python-requests/2.31.0\\r\\n"  # a library's: it names nobody
request = b"GET /v2/images HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n" + agent + b"\\r\\n"
client = socket.socket(family)
started = time.perf_counter()
client.connect((host, port))
client.sendall(request)
os.write(1, b"%d" % ((time.perf_counter() - started) * 1e6))
if "--linger" in sys.argv:
    client.recv(65536)
    time.sleep(1.0)
os._exit(0)
"""
NOTICE = "osflow-sniff: eBPF unavailable ({}); naming processes from /proc"


def unavailable(reason: str) -> None:
    message = f"eBPF unavailable: {reason}"
    if os.environ.get("OSFLOW_REQUIRE_EBPF"):
        pytest.fail(f"{message} (OSFLOW_REQUIRE_EBPF is set)")
    pytest.skip(message)


def require_ebpf() -> None:
    if os.geteuid() != 0:
        unavailable("needs root")
    reason = host.unavailable()
    if reason is None:
        try:
            build.compiled()
        except build.BuildError as error:
            reason = str(error)
    if reason is not None:
        unavailable(reason)


@pytest.fixture
def reports():
    """Start the kernel's reports into a SocketOwners; closed at the end of the test."""
    started: list[ConnectionReports] = []

    def start(owners: SocketOwners) -> ConnectionReports:
        require_ebpf()
        try:
            started.append(ConnectionReports(owners))
        except Unavailable as error:
            unavailable(str(error))
        return started[-1]

    yield start
    for one in started:
        one.close()


class Server:
    """An HTTP server on 127.0.0.1 in this process: one answer per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.end = self.sock.getsockname()
        self.clients: list[tuple[str, int]] = []
        self.served = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, client = self.sock.accept()
            except OSError:
                return
            with conn:
                self.clients.append(client)
                conn.recv(65536)
                body = b'{"images": []}'
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                with contextlib.suppress(OSError):  # the client may be gone already
                    conn.sendall(head + body)
            self.served.release()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.close()


@pytest.fixture
def openstack(tmp_path: Path):
    """Run the client as `python3 .../openstack image list --port N ...`: its comm is python3,
    only its command line names it. Returns its pid and how long it took (µs)."""
    script = tmp_path / "openstack"
    script.write_text(CLIENT)

    def run(port: int, *options: str) -> tuple[int, list[str], int]:
        argv = [sys.executable, str(script), "image", "list", "--port", str(port), *options]
        client = subprocess.Popen(argv, stdout=subprocess.PIPE)
        out, _ = client.communicate(timeout=30)
        assert client.returncode == 0
        return client.pid, argv, int(out)

    return run


@pytest.mark.parametrize("options", [(), ("--ipv6",)], ids=["ipv4", "ipv6-socket"])
def test_a_client_gone_within_a_millisecond_is_named_by_the_kernel(
    tmp_path, reports, server, openstack, options
):
    """The owner comes from the kernel alone: this /proc has nothing, and the client has exited
    before anyone asks."""
    owners = SocketOwners(proc=str(tmp_path / "empty-proc"))
    reports(owners)
    took = []
    for _ in range(3):
        pid, argv, microseconds = openstack(server.end[1], *options)
        took.append(microseconds)
        assert server.served.acquire(timeout=10)
        client = server.clients[-1]
        assert client[0] == "127.0.0.1"  # an IPv6 socket's mapped address, as packets show it
        assert owners.lookup(client, server.end) == "openstack"
        assert owners.process(client) == (pid, argv)
        # the accepting end: this test's own process
        assert owners.lookup(server.end, client) == service_of(own_argv())
        assert owners.process(server.end) == (os.getpid(), own_argv())
    assert min(took) < 1000, took


def own_argv() -> list[str]:
    """This process's command line as the kernel reads it: its first 512 bytes."""
    with open("/proc/self/cmdline", "rb") as stream:
        return [word.decode() for word in stream.read(512).split(b"\0") if word]


def test_close_detaches_and_frees_everything(tmp_path, reports, server, openstack):
    before = bpf_descriptors()
    owners = SocketOwners(proc=str(tmp_path / "empty-proc"))
    kernel = reports(owners)
    assert bpf_descriptors() > before  # programs, links, maps
    kernel.close()
    assert bpf_descriptors() == before
    assert not [t for t in threading.enumerate() if t.name == "connection reports"]
    openstack(server.end[1])
    assert server.served.acquire(timeout=10)
    assert owners.lookup(server.clients[-1], server.end) is None  # nothing reports it now
    assert owners.read_reports is None


def bpf_descriptors() -> int:
    """This process's descriptors of BPF programs, links and maps."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += "bpf" in os.readlink(fd)
        except OSError:  # (the descriptor listing the directory, closed)
            continue
    return count


def start_sniffer(
    port: int, out: Path, wrapper: tuple[str, ...] = (), options: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str]:
    """osflow-sniff -i lo on the server's port, and the first line it wrote on stderr."""
    sniffer = subprocess.Popen(
        [*wrapper, "osflow-sniff", "-i", "lo", "-q", "-o", str(out), *options, f"port {port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return sniffer, sniffer.stderr.readline()


def stop(sniffer: subprocess.Popen) -> str:
    sniffer.send_signal(signal.SIGINT)
    _, err = sniffer.communicate(timeout=60)
    assert sniffer.returncode == 0, err
    return err


def callers(out: Path) -> list[str]:
    import json

    calls = (out / "calls.jsonl").read_text().splitlines()
    return [json.loads(line)["caller"] for line in calls]


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")
def test_live_capture_names_clients_gone_within_a_millisecond(tmp_path, server, openstack):
    """osflow-sniff -i lo: two commands, each a process gone a millisecond after its request,
    named `openstack` by their command lines, which also title their pages."""
    require_ebpf()
    out = tmp_path / "live"
    sniffer, first = start_sniffer(server.end[1], out)
    assert first.startswith("listening on lo"), first  # no notice: eBPF is loaded
    for _ in range(2):
        openstack(server.end[1])
        assert server.served.acquire(timeout=10)
    stop(sniffer)
    assert callers(out) == ["openstack", "openstack"]
    index = (out / "index.md").read_text()
    assert index.count(f"openstack image list --port {server.end[1]}") == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")
@pytest.mark.parametrize(
    "wrapper, options, notice",
    [
        ((), ("--no-ebpf",), None),
        (
            ("setpriv", "--bounding-set=-bpf,-perfmon,-sys_admin", "--inh-caps=-all"),
            (),
            NOTICE.format("needs root, or the CAP_BPF and CAP_PERFMON capabilities"),
        ),
    ],
    ids=["no-ebpf-option", "without-bpf-privilege"],
)
def test_without_ebpf_one_notice_then_proc(tmp_path, server, openstack, wrapper, options, notice):
    """--no-ebpf, or no privilege to load the programs: the capture goes on, processes named
    from /proc as before (a client that stays long enough is found there)."""
    out = tmp_path / "live"
    sniffer, first = start_sniffer(server.end[1], out, wrapper, options)
    if notice is not None:
        assert first == notice + "\n"
        first = sniffer.stderr.readline()
    assert first.startswith("listening on lo"), first
    openstack(server.end[1], "--linger")
    assert server.served.acquire(timeout=10)
    err = stop(sniffer)
    assert "eBPF" not in err  # the notice once, at the start, and only without privilege
    assert callers(out) == ["openstack"]


def test_the_kernel_is_asked_before_proc_which_answers_the_rest(tmp_path):
    """Without root: a fake /proc with one socket of glance-api's, then what the kernel tells."""
    proc = fake_proc(tmp_path)
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 9292)
    owners = SocketOwners(proc=str(proc))
    assert owners.lookup(client, server) == "glance-api"  # from /proc
    owners.tell(client, server, 99, ["/usr/bin/python3", "/usr/bin/nova-conductor"])
    assert owners.lookup(client, server) == "nova-conductor"  # the kernel's first
    assert owners.process(client) == (99, ["/usr/bin/python3", "/usr/bin/nova-conductor"])
    # a report read only when /proc had nothing: the lookup reads the ones waiting first
    gone = ("127.0.0.1", 40001)
    owners.read_reports = lambda: owners.tell(gone, server, 7, ["openstack", "server", "list"])
    assert owners.lookup(gone, server) == "openstack"


def test_one_process_at_both_ends_names_neither(tmp_path):
    """A lab playing every service in one process (scripts/lab.py under pytest): its one name
    would make every call pytest -> pytest; the layout and the headers name them instead."""
    owners = SocketOwners(proc=str(tmp_path / "empty-proc"))
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 80)
    owners.tell(client, server, 5, ["python3", "-m", "pytest"])
    assert owners.lookup(client, server) == "pytest"  # (the other end not reported yet)
    owners.tell(server, client, 5, ["python3", "-m", "pytest"])
    assert owners.lookup(server, client) is None and owners.lookup(client, server) is None
    assert owners.process(client) is None  # nor is it a command of its own
    other = ("127.0.0.1", 40001)
    owners.tell(other, server, 6, ["openstack", "image", "list"])
    owners.tell(server, other, 5, ["python3", "-m", "pytest"])
    assert owners.process(other) == (6, ["openstack", "image", "list"])


def test_connections_open_at_the_start_are_read_from_proc_once(tmp_path):
    proc = fake_proc(tmp_path)
    owners = SocketOwners(proc=str(proc))
    told = (("127.0.0.1", 40002), ("127.0.0.1", 9292))
    owners.tell(*told, 5, ["keystone"])
    owners.remember_open()
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 9292)
    assert owners.told[client, server] == 77 and owners.process(client)[0] == 77
    assert owners.lookup(*told) == "keystone"  # what the kernel told stays
    (proc / "77" / "cmdline").unlink()  # gone: the answer was taken at the start
    (proc / "net" / "tcp").write_text("")
    assert owners.lookup(client, server) == "glance-api"


def fake_proc(tmp_path: Path) -> Path:
    """/proc with one connection 127.0.0.1:40000 -> 127.0.0.1:9292 owned by pid 77, glance-api,
    and a listening socket (never a connection)."""
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    row = "{}: {} {} {} 00000000:00000000 00:00000000 00000000     0        0 {} 1 0 20 4 30 10 -1"
    (proc / "net" / "tcp").write_text(
        header
        + "timeout inode\n"
        + row.format(0, "0100007F:244C", "00000000:0000", "0A", 4241)
        + "\n"
        + row.format(1, "0100007F:9C40", "0100007F:244C", "01", 4242)
        + "\n"
    )
    (proc / "77" / "fd").mkdir(parents=True)
    (proc / "77" / "fd" / "3").symlink_to("socket:[4242]")
    (proc / "77" / "cmdline").write_bytes(b"/usr/bin/python3\0/usr/bin/glance-api\0")
    return proc


def record(family: int, local: bytes, remote: bytes, argv: bytes) -> bytes:
    """A report as connections.bpf.c writes it: pid 77, comm python3, 40000 -> 9292."""
    return REPORT.pack(family, 40000, 9292, local, remote, 0, 77, len(argv), b"python3", argv)


def test_reports_are_read_as_the_capture_writes_addresses():
    ipv4 = record(2, socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.2"), b"a\0b\0")
    opened = parse(ipv4)
    assert (opened.local, opened.remote) == (("127.0.0.1", 40000), ("127.0.0.2", 9292))
    assert opened.argv == ("a", "b") and opened.pid == 77 and not opened.accepted
    v6 = socket.inet_pton(socket.AF_INET6, "fd00::1")
    mapped = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1")
    opened = parse(record(10, v6, mapped, b""))
    assert (opened.local, opened.remote) == (("fd00::1", 40000), ("127.0.0.1", 9292))
    assert opened.argv == ("python3",)  # no command line read: comm
    assert REPORT.size == 40 + 4 + 8 + 16 + 512  # struct connection in connections.bpf.c


def test_why_ebpf_is_unavailable_in_one_line(tmp_path, monkeypatch):
    assert host.unavailable(btf=tmp_path / "none") in (
        f"the kernel has no BTF ({tmp_path / 'none'})",
        "needs root, or the CAP_BPF and CAP_PERFMON capabilities",
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(build.shutil, "which", lambda tool: None)
    with pytest.raises(build.BuildError) as error:
        build.compiled()
    assert str(error.value) == (
        "connections.bpf.c is not compiled: clang and bpftool are missing; "
        "apt-get install clang bpftool libbpf-dev"
    )
    monkeypatch.setattr(libbpf, "LIBRARY", "libbpf.so.999")
    libbpf.library.cache_clear()
    try:
        with pytest.raises(libbpf.LibbpfError, match=r"^libbpf.so.999 not found"):
            libbpf.library()
    finally:
        libbpf.library.cache_clear()


def test_offline_runs_never_load_ebpf():
    """-r reads a capture: libbpf is not even loaded, whatever the host allows."""
    from conftest import PCAPS

    run = f"""
import sys
from click.testing import CliRunner
from sniffer.cli import main
result = CliRunner().invoke(main, ["-q", "-r", "{PCAPS / "image-show.pcap"}"])
assert result.exit_code == 0, result.output
print("libbpf" in open("/proc/self/maps").read())
"""
    result = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True)
    assert result.stdout == "False\n", result.stderr
