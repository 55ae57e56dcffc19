"""--jobs 2: the outputs written by a second process are the same files, fail the same way,
and survive an interrupt the same way."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time

import mutate
import pytest
from conftest import OUTPUTS, PCAPS

from sniffer.render import worker
from sniffer.run import AUTO_JOBS_BYTES, default_jobs

CAPTURES = sorted(p.name for p in PCAPS.glob("*.pcap*"))


@pytest.mark.parametrize("capture", CAPTURES)
def test_same_outputs_with_two_jobs(sniff, capture):
    one = sniff(PCAPS / capture, options=("--jobs", "1"))
    two = sniff(PCAPS / capture, options=("--jobs", "2"))
    assert two.exit_code == one.exit_code
    assert two.stdout == one.stdout and two.stderr == one.stderr
    assert two.outputs() == one.outputs()


@pytest.mark.parametrize("capture", ["server-create.pcap", "image-upload.pcap", "protocol.pcap"])
def test_same_outputs_when_the_main_process_prepares_bodies(sniff, monkeypatch, capture):
    """When the worker falls behind, the main process prepares the bodies' display: here
    always (every batch finds the worker "behind"), and the files are the same."""
    one = sniff(PCAPS / capture, options=("--jobs", "1"))
    monkeypatch.setattr(worker, "BEHIND", -1)
    monkeypatch.setattr(worker, "BATCH_EVENTS", 2)  # many batches: helping starts early
    two = sniff(PCAPS / capture, options=("--jobs", "2"))
    assert one.calls() and two.outputs() == one.outputs()


@pytest.mark.parametrize("pipe", ["narrow", "refused"])
def test_same_outputs_through_a_pipe_of_any_size(sniff, monkeypatch, pipe):
    """Batches larger than the pipe arrive in several reads: where it cannot be widened (not
    Linux, or a user's pipe quota spent), or is narrowed here, the files are the same."""
    one = sniff(PCAPS / "image-upload.pcap", options=("--jobs", "1"))
    if pipe == "refused":

        def refuse(fd, command, argument):
            raise PermissionError(1, "pipe quota spent")

        monkeypatch.setattr(worker.fcntl, "fcntl", refuse)
    else:
        monkeypatch.setattr(worker, "PIPE_BYTES", 4096)  # the smallest: a batch in many writes
    two = sniff(PCAPS / "image-upload.pcap", options=("--jobs", "2"))
    assert one.calls() and two.outputs() == one.outputs()


def test_same_outputs_with_two_jobs_and_selections(sniff, tmp_path):
    options = ("--exclude-service", "keystone", "--template-ids", "--show-secrets")
    one = sniff(PCAPS / "server-create.pcap", options=(*options, "-j", "1"))
    two = sniff(PCAPS / "server-create.pcap", options=(*options, "-j", "2"))
    assert one.calls() and two.outputs() == one.outputs()


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, jobs):
    """A write that fails (here: past RLIMIT_FSIZE, as on a full disk) ends the run with one
    line, exit 1, and no file, partial or temporary, in the output directory."""
    out = tmp_path / "flow"
    result = subprocess.run(
        ["osflow-sniff", "-q", "-r", str(PCAPS / "image-upload.pcap"), "-o", str(out), "-j", jobs],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "cannot write" in result.stderr and "File too large" in result.stderr
    assert list(out.iterdir()) == []


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A capture that takes seconds to read (the upload lab in 200-byte segments)."""
    path = tmp_path_factory.mktemp("big") / "big.pcap"
    mutate.main([str(PCAPS / "image-upload.pcap"), str(path), "--resegment", "200"])
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_interrupt_writes_whole_outputs(big, tmp_path, jobs, sig):
    """Reading stops at the next frame; what was read is written whole (exit 130)."""
    out = tmp_path / "flow"
    sniffer = subprocess.Popen(
        ["osflow-sniff", "-q", "-r", str(big), "-o", str(out), "-j", jobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    assert sniffer.poll() is None, "the capture was read before the interrupt: make it larger"
    sniffer.send_signal(sig)
    _, stderr = sniffer.communicate(timeout=60)
    assert sniffer.returncode == 130, stderr
    # no temporary files; the record of what was written
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, ".osflow-sniff"])
    calls = [json.loads(line) for line in (out / "calls.jsonl").read_text().splitlines()]
    har = json.loads((out / "flow.har").read_text())
    assert len(har["log"]["entries"]) == len(calls)
    assert '--8<-- "body.md"' in (out / "index.md").read_text()  # written whole
    assert "Traceback" not in stderr and "calls" in stderr  # the summary, as after a full run


def test_two_jobs_by_default_only_for_large_captures(tmp_path):
    """Starting the worker costs about 0.1 s: worth it on large captures only."""
    big = tmp_path / "big.pcap"
    with open(big, "wb") as sparse:
        sparse.truncate(AUTO_JOBS_BYTES)
    cpus = len(os.sched_getaffinity(0))
    assert default_jobs((str(PCAPS / "image-show.pcap"),)) == 1
    assert default_jobs((str(big),)) == (2 if cpus >= 2 else 1)
    assert default_jobs((str(tmp_path / "missing.pcap"),)) == 1


def test_main_process_failing_leaves_no_worker_and_no_file(tmp_path):
    """A bug's traceback in the main process: the worker hears the pipe close, drops its files
    and ends, so the process exits (instead of waiting for the worker at exit)."""
    script = (
        "from sniffer.render.worker import WorkerSink\n"
        "from sniffer.render.log import LogSink\n"
        f"WorkerSink(lambda: [LogSink({str(tmp_path / 'log.md')!r})])\n"
        "raise RuntimeError('a bug')\n"
    )
    result = subprocess.run(["python3", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "RuntimeError: a bug" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_main_process_killed_leaves_no_file(big, tmp_path):
    out = tmp_path / "flow"
    sniffer = subprocess.Popen(
        ["osflow-sniff", "-q", "-r", str(big), "-o", str(out), "-j", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)
    sniffer.kill()
    sniffer.wait()
    deadline = time.monotonic() + 10
    while list(out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)  # the worker sees the pipe close, and drops its partial files
    assert list(out.iterdir()) == []
