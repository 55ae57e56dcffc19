"""report.html in headless Chromium: it loads without console errors, draws one arrow per
message, and clicking arrow 5 of the seed flow shows the GET /v2/images/... request."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest
from conftest import PCAPS

CHROMIUM = shutil.which("chromium")
# CI installs chromium: there, a missing browser is a failure, not a skip
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-file-access-from-files",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=5000",
]
HARNESS = """<!DOCTYPE html><html><body><div id="result">waiting</div>
<iframe id="report" src="report.html" width="1200" height="800"></iframe>
<script>
document.getElementById("report").onload = () => {
  const page = document.getElementById("report").contentDocument;
  const arrow = page.querySelector('.arrow[data-n="5"]');
  arrow.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  const details = page.getElementById("details").textContent;
  const arrows = page.querySelectorAll("#diagram .arrow").length;
  const rows = page.querySelectorAll("#calls tr").length;
  document.getElementById("result").textContent =
    JSON.stringify({details: details, arrows: arrows, rows: rows});
};
</script></body></html>"""


def browse(tmp_path, page: str) -> tuple[str, str]:
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout, result.stderr


def test_report_in_a_browser(sniff, tmp_path):
    run = sniff(PCAPS / "image-show.pcap")
    report = run.out / "report.html"
    assert "<script src" not in report.read_text() and "<link" not in report.read_text()
    (run.out / "harness.html").write_text(HARNESS)
    dom, log = browse(tmp_path, (run.out / "harness.html").as_uri())
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == []  # no error, no warning from the page
    found = json.loads(html.unescape(re.search(r'<div id="result">(.*?)</div>', dom).group(1)))
    assert found["arrows"] == 8 and found["rows"] == 4
    assert found["details"].startswith("(5) GET /v2/images/a42bfade-78ec-4c95-b7b4-272ba265072c")
    assert "openstack → glance-api" in found["details"]
    assert "X-Auth-Token: <redacted:" in found["details"]  # masked like every output


def test_a_console_error_would_be_caught(tmp_path):
    """Guard for the test above: a page that fails is seen failing."""
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>notDefined();</script></body></html>")
    _, log = browse(tmp_path, broken.as_uri())
    assert any(":CONSOLE" in line and "notDefined" in line for line in log.splitlines())


def test_filters_and_deep_link(sniff, tmp_path):
    run = sniff(PCAPS / "server-create.pcap")
    dom, _ = browse(tmp_path, (run.out / "report.html").as_uri() + "#message=21")
    assert "<h2>(21) POST /compute/v2.1/servers</h2>" in dom
    assert dom.count('class="arrow ') == 96
