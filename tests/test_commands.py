"""One page per command: a capture of a working session (scripts/scenarios/session.py, five
`openstack` commands back to back while nova-compute reports to placement) is cut into its
commands, each call in the right one, each page titled by its main operation, the background
apart; one command keeps the flat layout; `--split none` keeps one page."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import PCAPS, REPO

from sniffer import redact
from sniffer.render import inert
from sniffer.render.split import slug

TITLES = [
    "List Images",
    "Show Image",
    "List Servers Detailed",
    "Show Flavor Details",
    "Show Project Details",
]


def truth_by_number(name: str) -> dict[int, dict]:
    """The truth's calls by the number of their request message."""
    truth = json.loads((PCAPS / f"{name}.truth.json").read_text())
    first: dict[str, int] = {}
    for number, (kind, call_id) in enumerate(truth["messages"], 1):
        if kind == "request":
            first.setdefault(call_id, number)
    return {first[call["id"]]: call for call in truth["calls"]}


def agreement(name: str, calls: list[dict]) -> tuple[int, int]:
    """(calls in the command the truth says, calls)."""
    truth = truth_by_number(name)
    right = sum(
        1
        for call in calls
        if call["command"] == truth[call["numbers"][0]]["command"]
        and (call["background"] is not None) == (truth[call["numbers"][0]]["command"] is None)
    )
    return right, len(truth)


@pytest.mark.parametrize("name", ["session", "session-processes"])
def test_every_call_in_its_command_and_every_page_titled(sniff, name):
    run = sniff(PCAPS / f"{name}.pcap", options=("--split", "command"))
    calls = run.calls()
    assert agreement(name, calls) == (len(calls), len(calls)) == (49, 49)
    index = run.read("index.md")
    folders = [f"{n:03d}-{slug(title)}" for n, title in enumerate(TITLES, 1)]
    for number, (title, folder) in enumerate(zip(TITLES, folders, strict=True), 1):
        assert f"| {number} | " in index and f"[{title}]({folder}/index.md)" in index
        page = (run.out / folder / "index.md").read_text()
        assert page.startswith(f"# {title}\n")
        own = [call for call in calls if call["command"] == number]
        headings = re.findall(r"^### \((\d+)\) ", (run.out / folder / "body.md").read_text(), re.M)
        assert [int(n) for n in headings] == list(range(1, 2 * len(own) + 1))  # its own numbers
        assert len((run.out / folder / "diagram.md").read_text().splitlines()) == 2 * len(own)
    assert "[nova-compute](background-nova-compute/index.md)" in index
    background = (run.out / "background-nova-compute" / "body.md").read_text()
    assert background.count("\n### (") == 2 * 16 and "/placement/resource_providers/" in background
    assert "/v2/images" not in background  # no command's call in it


def test_without_the_hook_the_commands_still_come_apart(sniff):
    """Connections and tokens cut the session as the hook does (and the project lookups made
    with python-keystoneclient are the command line's: the token they carry is its own)."""
    run = sniff(PCAPS / "session-nohook.pcap", options=("--split", "command"))
    assert agreement("session-nohook", run.calls()) == (49, 49)
    assert all((run.out / f"{n:03d}-{slug(t)}").is_dir() for n, t in enumerate(TITLES, 1))


def test_one_command_keeps_the_flat_layout(sniff):
    run = sniff(PCAPS / "image-show.pcap", options=("--split", "command"))
    assert sorted(p.name for p in run.out.iterdir() if not p.name.startswith(".")) == sorted(
        ["index.md", "body.md", "diagram.md", "log.md", "calls.jsonl", "flow.har", "report.html"]
    )
    assert run.read("index.md").startswith("# Call flow\n\n## Sequence Diagram")
    assert {call["command"] for call in run.calls()} == {1}


def test_split_none_keeps_every_call_in_one_page(sniff):
    run = sniff(PCAPS / "session.pcap", options=("--split", "none"))
    assert len(re.findall(r"^### \(", run.read("body.md"), re.M)) == 2 * 49
    assert not any(path.is_dir() for path in run.out.iterdir())


def test_the_exports_say_which_command(sniff):
    run = sniff(PCAPS / "session.pcap", options=("--split", "command"))
    har = json.loads(run.read("flow.har"))["log"]["entries"]
    truth = truth_by_number("session")
    for entry, call in zip(har, run.calls(), strict=True):
        expected = truth[call["numbers"][0]]["command"]
        assert entry["_command"] == call["command"] == expected
        assert entry["_background"] == call["background"] == (None if expected else "nova-compute")


def test_folder_names_and_the_index_stay_inert():
    assert slug("../../etc/passwd") == "etc-passwd"
    assert slug("`rm -rf /`; <script>") == "rm-rf-script"
    assert slug("\u202e\x1b[31m") == "31m"
    assert slug("") == "command"
    assert len(slug("word " * 40)) <= 60


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_live_each_command_gets_its_page_as_it_ends(tmp_path, jobs):
    """Live, with the session's commands run as real processes (scripts/session_lab.py): each
    command's folder appears once its process has exited, while the capture goes on, named
    and titled by its command line with the password masked; then the background's."""
    out = tmp_path / "site"
    sniffer = subprocess.Popen(
        ["osflow-sniff", "-i", "lo", "-q", "-j", jobs, "-o", str(out), "port 80 or port 60999"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sniffer.stderr.readline().startswith("listening on lo")
        lab = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "session_lab.py")],
            capture_output=True,
            text=True,
        )
        assert lab.returncode == 0, lab.stderr
        lines = re.findall(r"^command \d+: (.*)$", lab.stdout, re.M)
        folders = [
            f"{n:03d}-{slug(line.replace('secret', 'redacted'))}" for n, line in enumerate(lines, 1)
        ]
        deadline = time.monotonic() + 15
        while not all((out / f).is_dir() for f in folders) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all((out / folder / "index.md").is_file() for folder in folders)  # before the end
        assert sniffer.poll() is None
        sniffer.send_signal(signal.SIGINT)
        _, err = sniffer.communicate(timeout=60)
        assert sniffer.returncode == 0, err
        index = (out / "index.md").read_text()
        assert "secret" not in index and "--os-password &#60;redacted>" in index
        calls = [json.loads(line) for line in (out / "calls.jsonl").read_text().splitlines()]
        sizes = [sum(call["command"] == n for call in calls) for n in range(1, len(lines) + 1)]
        assert sizes == [5, 6, 10, 8, 4]  # as the session's truth has them
        assert sum(call["background"] == "nova-compute" for call in calls) == 16
        for folder, line in zip(folders, lines, strict=True):
            page = (out / folder / "index.md").read_text()
            assert page.startswith(f"# {inert.heading(redact.command_line(line))}\n")
    finally:
        if sniffer.poll() is None:  # a failed check leaves no capture running
            sniffer.kill()
            sniffer.communicate()
