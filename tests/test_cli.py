"""The command line: options, user service names, bounds, and clean failures."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import mutate
import pytest
from conftest import PCAPS, command

from sniffer.render import log

SEED = PCAPS / "image-show.pcap"


def test_without_output_prints_one_line_per_message():
    result = command("-r", str(SEED))
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 8
    assert "4 calls" in result.stderr


def test_a_reader_that_goes_away_ends_the_lines_not_the_run(tmp_path):
    """`osflow-sniff -r X -o DIR | head -1`: the terminal's lines stop when the reader has gone,
    and the run goes on to write its files and exit 0, with no traceback."""
    run = subprocess.Popen(
        ["osflow-sniff", "-r", str(PCAPS / "server-create.pcap"), "-o", str(tmp_path / "o")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    run.stdout.close()  # gone before the first line is written: every write fails
    errors = run.stderr.read().decode()
    assert run.wait(60) == 0, errors
    assert errors.splitlines() == [
        "246 packets, 15 connections, 52 requests, 52 responses, 48 calls"
    ]
    assert (tmp_path / "o" / "calls.jsonl").read_text().count("\n") == 48


def test_outputs_are_written_whole_with_no_temporary_files_left(sniff):
    run = sniff(SEED)
    assert sorted(p.name for p in run.out.iterdir()) == sorted(
        ["body.md", "diagram.md", "index.md", "log.md", "calls.jsonl", "flow.har", "report.html"]
        + [".osflow-sniff"]  # the record of what it wrote (see test_site.py)
    )


def test_services_file_renames_callees(sniff, tmp_path):
    services = tmp_path / "services.toml"
    services.write_text(
        'front_door_ports = [80]\n[prefixes]\n"/identity" = "keystone-uwsgi"\n'
        '[ports]\n"127.0.0.1:60999" = "glance-backend"\n'
    )
    calls = sniff(SEED, options=("--services", str(services))).calls()
    assert {c["callee"] for c in calls} == {"keystone-uwsgi", "glance-api"}
    # the proxied call keeps its front leg's name; the file names a backend leg seen alone
    cut = tmp_path / "cut.pcap"
    mutate.main([str(SEED), str(cut), "--start", "10"])  # the front leg's request is gone
    calls = sniff(cut, options=("--services", str(services))).calls()
    assert (
        next(c for c in calls if c["method"] == "GET" and c["caller"] == "openstack")["callee"]
        == "glance-backend"
    )


def test_bad_services_file_is_a_one_line_error(tmp_path):
    services = tmp_path / "services.toml"
    services.write_text("[ports]\n9292 = \n")
    result = command("-r", str(SEED), "--services", str(services))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    services.write_text('[colours]\nred = "x"\n')
    result = command("-r", str(SEED), "--services", str(services))
    assert "unknown key 'colours'" in result.stderr


def test_max_body_bounds_what_is_kept(sniff):
    run = sniff(SEED, options=("--max-body", "100"))
    token = next(c for c in run.calls() if c["method"] == "POST")
    assert token["response"]["body"] == {"size": 3952, "kept": 100, "encoding": None}
    assert "3852 more bytes not kept" in run.read("body.md")
    assert not token["incomplete"]  # the framing was followed to the end


def test_no_input_is_a_usage_error():
    result = command()
    assert result.returncode == 2
    assert "give a capture with -r FILE, or an interface with -i IFACE" in result.stderr


def test_bad_size_is_a_usage_error():
    result = command("-r", str(SEED), "--max-body", "lots")
    assert result.returncode == 2
    assert "not a size" in result.stderr


def test_unwritable_output_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = command("-r", str(SEED), "-o", str(blocker / "flow"))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "cannot write to" in result.stderr


def on_a_terminal(tmp_path, arguments: str) -> str:
    """What osflow-sniff prints on a terminal (through `script`) for a 45 MB capture."""
    big = tmp_path / "big.pcap"
    mutate.main([str(PCAPS / "image-upload.pcap"), str(big), "--resegment", "1000"])
    return subprocess.run(
        ["script", "-qc", f"osflow-sniff {arguments.format(big=big)}", "/dev/null"],
        capture_output=True,
        timeout=120,
    ).stdout.decode("utf-8", "replace")


def test_progress_on_a_terminal_only(tmp_path):
    """Reading a large capture on a terminal shows packets, bytes and calls on stderr."""
    shown = on_a_terminal(tmp_path, "-r {big} > /dev/null")
    assert re.search(r"\d+ packets, [\d.]+ of [\d.]+ MB \(\d+%\), \d+ calls", shown)
    piped = command("-r", str(tmp_path / "big.pcap"))
    assert " MB (" not in piped.stderr  # not a terminal: no progress line


def test_progress_off_with_quiet(tmp_path):
    assert " MB (" not in on_a_terminal(tmp_path, "-q -r {big}")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_output_that_cannot_be_opened_leaves_no_other_behind(tmp_path, jobs):
    out = tmp_path / "flow"
    har = str(tmp_path / "no" / "x.har")
    result = command("-r", str(SEED), "-o", str(out), "--har", har, "-j", jobs)
    assert result.returncode == 1
    assert (
        result.stderr
        == f"Error: cannot write {tmp_path / 'no' / 'x.har'}: No such file or directory\n"
    )
    assert list(out.iterdir()) == []  # the documents opened before it are gone too


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_bug_is_one_line_and_leaves_no_partial_file(sniff, monkeypatch, jobs):
    """A bug in an output (here: the log's formatting made to raise) ends the run with one
    line naming it, exit 1, and no file, partial or temporary (the worker forks: it fails too)."""

    def broken(message):
        raise RuntimeError("formatting broke")

    monkeypatch.setattr(log, "entry", broken)
    run = sniff(PCAPS / "image-show.pcap", options=("-q", "-j", jobs))
    assert run.exit_code == 1
    assert run.stderr.count("\n") == 1 and "RuntimeError: formatting broke" in run.stderr
    assert list(run.out.iterdir()) == []


def test_a_file_it_did_not_write_is_not_overwritten(tmp_path):
    """A page written by hand where the documents go (or one of them edited since) stops the
    run before it starts, with one line; --force overwrites; its own files it rewrites."""
    out = tmp_path / "flow"
    out.mkdir()
    (out / "index.md").write_text("# written by hand\n")
    refused = command("-q", "-r", str(SEED), "-o", str(out))
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "index.md exists and osflow-sniff did not write it" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["index.md"]
    assert (out / "index.md").read_text() == "# written by hand\n"
    forced = command("-q", "-r", str(SEED), "-o", str(out), "--force")
    assert forced.returncode == 0 and (out / "index.md").read_text().startswith("# Call flow")
    again = command("-q", "-r", str(SEED), "-o", str(out))  # its own files: rewritten
    assert again.returncode == 0
    with open(out / "log.md", "a") as log:
        log.write("a note\n")
    edited = command("-q", "-r", str(SEED), "-o", str(out))
    assert edited.returncode == 1 and "log.md exists" in edited.stderr


def test_title_and_snippet_paths_inside_an_mkdocs_project(tmp_path):
    """index.md names its includes from the snippets base_path of the project it is in."""
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: x\nmarkdown_extensions:\n  - pymdownx.snippets:\n      base_path: [docs]\n"
    )
    out = tmp_path / "docs" / "openstack" / "image" / "show"
    result = command("-q", "-r", str(SEED), "-o", str(out), "--title", "openstack image show")
    assert result.returncode == 0, result.stderr
    index = (out / "index.md").read_text()
    assert index.startswith("# openstack image show\n")
    for name in ("diagram.md", "body.md", "log.md"):
        assert f'--8<-- "openstack/image/show/{name}"' in index


def test_an_export_to_standard_output_writes_to_it(tmp_path):
    """`--har /dev/stdout` writes the HAR down the pipe: the device is written to, not replaced
    by a file renamed over it."""
    before = os.lstat("/dev/stdout")
    result = command("-q", "-r", str(SEED), "--har", "/dev/stdout")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["log"]["entries"][0]["request"]["method"] == "GET"
    after = os.lstat("/dev/stdout")
    assert (stat.S_IFMT(after.st_mode), after.st_ino) == (
        stat.S_IFMT(before.st_mode),
        before.st_ino,
    )
