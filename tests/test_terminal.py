"""The terminal views: aligned columns, a response naming its request, durations in the unit that
fits, colour on a terminal only, lines cut to its width only, and nothing from the wire that
can drive the terminal."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import mutate
import pytest
from conftest import PCAPS, REPO, tcp_frame

from sniffer.decode import ACK, FIN, SYN
from sniffer.filters import Selection
from sniffer.flow import EMPTY, Call, Exchange, Request, Response
from sniffer.http import RequestHead
from sniffer.render.console import (
    WHO_MIN,
    Line,
    Terminal,
    answered,
    cells,
    clipped,
    colour_wanted,
    escaped,
    note,
    took,
)
from sniffer.render.live import LiveView

PSH = 0x08
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the only sequences the views may write themselves
PAIR = re.compile(r"^ *\d+ \S+ +(\S+) [→←] (\S+) ")
WHAT = re.compile(r"(?<=  )(GET|POST|PUT|DELETE|\d{3}) [A-Z/]")  # a method, or a status
RESPONSE = re.compile(r"↩ (\d+) +(\d+(?:\.\d+)?) (µs|ms|s )  (\d{3}) ")
HOSTILE = [
    "\x1b[2J",  # CSI: clear the screen
    "\x1b]0;pwned\x07",  # OSC: set the window title, ended by BEL
    "\x9b31m",  # the 8-bit CSI (C1)
    "\x1b]8;;http://evil/\x1b\\",  # OSC 8: a hyperlink
    "\x00\x08\x7f\x85",  # NUL, backspace, DEL, NEL
    "\u202etxt.exe",  # right-to-left override
    "\u2066\u2067\u2068\u2069\u200f",  # bidi isolates, a right-to-left mark
    "a\u2028b",  # a line separator
    "\ud800",  # a lone surrogate (not even encodable)
]


def visible(text: str) -> str:
    """What a terminal would be told apart from text: anything but the views' own colours."""
    return "".join(c for c in SGR.sub("", text) if not c.isprintable() and c != "\n")


# -- durations, escaping, widths -----------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (0.0, "   0 µs"),
        (4e-7, "   0 µs"),
        (8.5e-4, " 850 µs"),
        (9.996e-4, "1.00 ms"),
        (1.97e-3, "1.97 ms"),
        (0.0123, "12.3 ms"),
        (0.123, " 123 ms"),
        (0.9999, "1.00 s "),
        (1.2, "1.20 s "),
        (75.0, "75.0 s "),
        (3600.0, "3600 s "),
        (-2e-5, " -20 µs"),  # (clocks of merged captures may disagree)
    ],
)
def test_durations_in_the_unit_that_fits(seconds, shown):
    assert took(seconds) == shown


@pytest.mark.parametrize("text", HOSTILE)
def test_controls_and_bidi_are_escaped(text):
    shown = escaped(text)
    assert shown.isprintable()
    assert "\\" in shown


def test_escapes_are_readable_and_unambiguous():
    assert escaped("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"
    assert escaped("\u202e") == "\\u202e"
    assert escaped("\\x1b") == "\\\\x1b"  # a backslash sent is not an escape made here
    plain = "/v2/images/a42bfade?name=é 服务"
    assert escaped(plain) is plain


def test_cells_count_wide_and_combining_characters():
    assert cells("abc") == 3
    assert cells("服务") == 4
    assert cells("e\u0301") == 1
    assert clipped("a服务b", 4) == "a服"
    assert clipped("abc", 10) == "abc"


# -- lines ---------------------------------------------------------------------------------------


def a_line(path: str = "/v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c") -> Line:
    head = [("   8 ", ""), ("20:18:45.527", "2"), (" openstack ← glance-api  ↩ 5 ", "")]
    return Line(head + answered(1.5e-4, 200, "OK"), path, [note("incomplete")])


def test_a_line_too_wide_loses_its_path_end_first():
    whole = a_line().text()
    assert whole.endswith("a42bfade-78ec-4c95-b7b4-272ba265072c  [incomplete]")
    cut = a_line().text(width=90)
    assert cells(cut) == 90
    assert cut.endswith("…  [incomplete]")  # the notes stay
    assert cut.startswith(whole[: whole.index("/v2/")])  # and every column before the path
    assert a_line().text(width=len(whole)) == whole


def test_a_line_with_no_room_for_its_path_is_cut_at_its_end():
    cut = a_line().text(width=30)
    assert cells(cut) == 30 and cut.endswith("…")
    assert cells(a_line("/服务" * 40).text(width=70)) <= 70


@pytest.mark.parametrize(
    "status, colour", [(200, "32"), (204, "32"), (302, "36"), (404, "33"), (503, "31")]
)
def test_status_coloured_by_class(status, colour):
    line = Line(answered(0.001, status, "Reason"), "/x", [note("no response")])
    shown = line.text(colour=True)
    assert f"\x1b[{colour}m{status} Reason\x1b[0m" in shown
    assert "\x1b[35m  [no response]\x1b[0m" in shown  # notes: magenta
    assert "\x1b" not in line.text()


@pytest.mark.parametrize(
    "tty, environ, wanted",
    [
        (True, {}, True),
        (False, {}, False),  # piped
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": "0"}, False),  # any value but empty
        (True, {"NO_COLOR": ""}, True),
        (True, {"TERM": "dumb"}, False),
        (False, {"FORCE_COLOR": "1"}, True),
        (False, {"FORCE_COLOR": "0"}, False),
        (True, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
    ],
)
def test_colour_on_a_terminal_unless_no_color(tty, environ, wanted):
    assert colour_wanted(tty, environ) is wanted


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_cuts_and_colours_only_a_tty(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # (a terminal's size: asked as shutil does)
    tty, pipe = FakeTerminal(), io.StringIO()
    for stream in (tty, pipe):
        Terminal(stream, {}).show(a_line())
    assert "\x1b[32m200 OK" in tty.getvalue() and cells(SGR.sub("", tty.getvalue())) == 81
    assert pipe.getvalue() == a_line().text() + "\n"
    Terminal(tty := FakeTerminal(), {"NO_COLOR": "1"}).show(a_line())
    assert "\x1b" not in tty.getvalue() and cells(tty.getvalue()) == 81


# -- the offline view, through a pipe --------------------------------------------------------------


def test_piped_lines_are_aligned_whole_and_plain(sniff):
    lines = sniff(PCAPS / "server-create.pcap").stdout.splitlines()
    assert len(lines) == 96 and "\x1b" not in "".join(lines)
    assert max(len(line) for line in lines) > 150  # not cut: scripts read whole lines
    requests = {int(line[:4]): line for line in lines if " → " in line}
    responses = [line for line in lines if " ← " in line]
    assert len(requests) == len(responses) == 48
    # the message column starts at the same place on every line, after the caller → callee
    # column, the request answered and the duration
    assert {WHAT.search(line).start() for line in lines} == {18 + WHO_MIN + 2 + 6 + 1 + 7 + 2}
    for line in responses:
        found = RESPONSE.search(line)
        assert found, line
        assert line.index("↩") == 18 + WHO_MIN + 2 + 6 - len(found[1]) - 2
        request = requests[int(found[1])]  # the request it answers: same services, same path
        assert PAIR.match(request).groups() == PAIR.match(line).groups()
        assert request.rsplit(" ", 1)[1] == line.rsplit(" ", 1)[1]
    assert "(0.0 ms)" not in "".join(lines)
    assert {RESPONSE.search(line)[3] for line in responses} == {"µs", "ms"}
    assert "↩ 21 1.97 ms  202 Accepted /compute/v2.1/servers" in lines[63]


def test_notes_stay_on_their_lines(sniff):
    out = sniff(PCAPS / "control-plane-stuck.pcap").stdout
    assert re.search(r"→ 127\.0\.0\.1:60999 +GET /v2/\S+  \[no response within 10 s\]\n", out)


# -- on a terminal -------------------------------------------------------------------------------


def on_a_terminal(capture: Path, columns: int = 80, **environ: str) -> str:
    """The view as a terminal of that width gets it (the working tree's code, not an install)."""
    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR", "FORCE_COLOR")}
    env.update(PYTHONPATH=str(REPO), TERM="xterm-256color", **environ)
    run = subprocess.Popen(
        [sys.executable, "-m", "sniffer", "-r", str(capture)],
        stdout=sub,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=env,
    )
    os.close(sub)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # (EIO: the other side is closed)
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert run.wait(60) in (0, 3)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_on_a_terminal_lines_are_cut_to_its_width_and_coloured(sniff):
    piped = sniff(PCAPS / "server-create.pcap").stdout.splitlines()
    out = on_a_terminal(PCAPS / "server-create.pcap", 120)
    lines = out.splitlines()
    assert len(lines) == len(piped) == 96
    for line, whole in zip(lines, piped, strict=True):
        line = SGR.sub("", line)
        if len(whole) <= 120:
            assert line == whole
        else:  # cut in its path: the start is the same
            assert cells(line) == 120 and line.endswith("…") and whole.startswith(line[:-1])
    assert "\x1b[32m200 OK\x1b[0m" in out and "\x1b[36m300 Multiple Choices\x1b[0m" in out
    assert visible(out) == ""
    plain = on_a_terminal(PCAPS / "server-create.pcap", 100, NO_COLOR="1")
    assert "\x1b" not in plain
    assert all(cells(line) <= 100 for line in plain.splitlines())
    assert any(cells(line) == 100 and line.endswith("…") for line in plain.splitlines())


# -- hostile content -----------------------------------------------------------------------------


def exchange(client: int, server: int, request: bytes, response: bytes) -> list[bytes]:
    """One request and its response on a connection of its own."""
    ask, answer = 101 + len(request), 501 + len(response)
    return [
        tcp_frame(client, server, 100, 0, SYN),
        tcp_frame(server, client, 500, 101, SYN | ACK),
        tcp_frame(client, server, 101, 501, ACK | PSH, request),
        tcp_frame(server, client, 501, ask, ACK | PSH, response),
        tcp_frame(client, server, ask, answer, FIN | ACK),
        tcp_frame(server, client, answer, ask + 1, FIN | ACK),
    ]


def hostile_capture(path: Path) -> Path:
    """Controls where the wire lets them through (a declared caller, a reason phrase), and a
    catalog that names a service with controls and bidi overrides (JSON: any character)."""
    catalog = {"type": "x", "name": "".join(HOSTILE[:-1]), "endpoints": [{"url": "http://h:9"}]}
    body = json.dumps({"token": {"catalog": [catalog]}}).encode()
    frames = exchange(
        40000,
        80,
        b"POST /identity/v3/auth/tokens HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
        b"X-Requestshook-Request-From: a\x1b]0;pwned\x07\x1b[2J\x9b31m\x7f\xe2\x80\xae\r\n\r\n",
        b"HTTP/1.1 201 O\x1b[8mK\x9b\x07\x85\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    frames += exchange(
        40001,
        9,
        b"GET /v2/images?q=\\x1b HTTP/1.1\r\nHost: h:9\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )
    packets = [mutate.packet(1700000000 + n * 0.0005, frame) for n, frame in enumerate(frames)]
    mutate.write(str(path), packets, 1)
    return path


def test_hostile_content_cannot_drive_the_terminal(sniff, tmp_path):
    capture = hostile_capture(tmp_path / "hostile.pcap")
    piped = sniff(capture).stdout
    assert len(piped.splitlines()) == 4
    assert visible(piped) == "" and "\x1b" not in piped
    assert "a\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x7f" in piped  # the declared caller, escaped
    assert "201 O\\x1b[8mK\\x9b\\x07\\x85 " in piped  # the reason
    assert "\\u202etxt.exe" in piped and "\\u2066" in piped  # the catalog's name
    assert "?q=\\\\x1b" in piped  # a backslash sent is shown doubled
    shown = on_a_terminal(capture, 200)
    assert visible(shown) == "" and "\\x1b[2J" in shown
    assert len(SGR.sub("", shown).splitlines()) == 4


# -- the live view -------------------------------------------------------------------------------


def a_call(caller: str, callee: str, target: str, status: int | None, key: int) -> Call:
    request = Request("GET", target, "1.1", (), EMPTY, 100.0, 100.0)
    response = Response(status, "OK", "1.1", (), EMPTY, 100.001, 100.00123) if status else None
    hop = Exchange(("127.0.0.1", 1), ("127.0.0.1", 2), request, response)
    return Call("", caller, callee, [hop], key=key)


def head(call: Call) -> RequestHead:
    request = call.request
    return RequestHead(("127.0.0.1", 1), ("127.0.0.1", 2), "GET", request.target, "1.1", (), 100.0)


def test_live_view_numbers_its_lines_and_answers_by_number():
    out = io.StringIO()
    view = LiveView(out, None, Selection(exclude_services=frozenset({"swift"})))
    one = a_call("openstack", "glance-api", "/v2/images", 200, 1)
    two = a_call("glance-api", "keystone", "/identity/v3/auth/tokens", None, 2)
    dropped = a_call("openstack", "swift", "/v1/x", 200, 3)
    for kind, call, depth in [
        ("request", one, 0),
        ("request", dropped, 0),
        ("request", two, 1),
        ("response", two, 1),
        ("response", dropped, 0),
        ("response", one, 0),
    ]:
        view.progress(kind, call, depth, head(call))
    lines = out.getvalue().splitlines()
    assert [line[:4] for line in lines] == ["   1", "   2", "   3", "   4"]
    assert "  glance-api ← keystone" in lines[2] and "↩ 2" in lines[2]
    assert lines[2].endswith("GET /identity/v3/auth/tokens  [no response]")
    assert "↩ 1 1.23 ms  200 OK /v2/images" in lines[3]
    assert view.started == {}  # nothing kept once a call has ended
    assert {WHAT.search(line).start() for line in lines} == {18 + WHO_MIN + 2 + 6 + 1 + 7 + 2}


def test_live_view_escapes_and_colours_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = FakeTerminal()
    view = LiveView(out, None)
    call = a_call("\x1b]0;pwned\x07\x9b2J", "\u202eevil", "/v2/x\\x1b\x1b[2J", 200, 1)
    view.progress("request", call, 0, head(call))
    view.progress("response", call, 0, head(call))
    shown = out.getvalue()
    assert visible(shown) == ""
    assert "\x1b[32m200 OK\x1b[0m" in shown
    assert all(cells(SGR.sub("", line)) <= 100 for line in shown.splitlines())
