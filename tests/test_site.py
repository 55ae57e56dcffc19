"""The documents as the community publishes them: `-o DIR --mkdocs` built by mkdocs-material
with `--strict`, the page opened in headless Chromium and measured in its live DOM. The seed
flow shows its 8 arrows and its Header/Body tabs; a capture built to break out of every
document (pcaps/hostile.pcap: fences, snippet markers, tabs, admonitions, HTML, braces,
mermaid's ; # %, non-UTF-8, a lone CR, long lines) shows exactly its own headings and tabs,
includes no other file, runs no script, and its diagram is drawn."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PCAPS, REPO

CHROMIUM = shutil.which("chromium")
MERMAID = os.environ.get("OSFLOW_MERMAID") or str(
    REPO / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
)
# CI installs chromium and mermaid: there, a missing one is a failure, not a skip
pytestmark = pytest.mark.skipif(
    (CHROMIUM is None or not os.path.isfile(MERMAID)) and not os.environ.get("CI"),
    reason="needs Debian's chromium and mermaid from npm (npm install mermaid@11)",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--allow-file-access-from-files",
    "--virtual-time-budget=15000",
    "--dump-dom",
]
OPEN_SHADOW = """const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  return attach.call(this, {...init, mode: "open"});
};
"""
# The page in a frame; once mermaid has drawn (or after 10 s), what it shows.
HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<div id="result">waiting</div>
<iframe id="page" src="site/index.html" width="1400" height="900"></iframe>
<script>
window.pwned = false;
const frame = document.getElementById("page");
frame.onload = () => {
  const started = Date.now();
  const look = () => {
    const page = frame.contentDocument;
    const host = page.querySelector("div.mermaid");
    const svg = host && host.shadowRoot ? host.shadowRoot.querySelector("svg") : null;
    if (!svg && Date.now() - started < 10000) return setTimeout(look, 100);
    const texts = (selector) => [...page.querySelectorAll(selector)].map(e => e.textContent);
    const code = texts("pre code").join("\\n");
    document.getElementById("result").textContent = JSON.stringify({
      title: page.title,
      h1: texts("article h1").map(t => t.replace(/\\u00b6$/, "")),
      h2: texts("article h2").map(t => t.replace(/\\u00b6$/, "")),
      h3: texts("article h3").map(t => t.replace(/\\u00b6$/, "")),
      tabs: texts(".tabbed-labels label"),
      admonitions: [...page.querySelectorAll("article .admonition, article details")]
        .map(e => e.className),
      arrows: svg ? svg.querySelectorAll("[class^=messageLine]").length : -1,
      messages: svg ? [...svg.querySelectorAll("text.messageText")].map(e => e.textContent) : [],
      actors: svg ? [...new Set([...svg.querySelectorAll("text.actor")].map(e => e.textContent))]
        : [],
      scripts: [...page.querySelectorAll("script")].filter(s => s.textContent.includes("pwned"))
        .length,
      handlers: page.querySelectorAll("[onerror], [onclick], [onload]").length,
      code: code,
      width: svg ? svg.getBoundingClientRect().width : 0,
      pane: host ? host.getBoundingClientRect().width : 0,
    });
  };
  look();
};
</script></body></html>"""


def publish(tmp_path: Path, capture: str, split: str = "none", page: str = "index.html") -> dict:
    """The capture's documents as an mkdocs project, built, opened (`page` of the site) and
    measured."""
    root = tmp_path / "site-project"
    env = {**os.environ, "OSFLOW_MERMAID": MERMAID}
    sniffed = subprocess.run(
        ["osflow-sniff", "-q", "-r", str(PCAPS / capture), "-o", str(root), "--mkdocs"]
        + ["--split", split],
        capture_output=True,
        text=True,
        env=env,
    )
    assert sniffed.returncode == 0, sniffed.stderr
    # mkdocs-material draws the diagram in a closed shadow root: opened, to be measured
    (root / "docs" / "assets" / "open-shadow.js").write_text(OPEN_SHADOW)
    config = (root / "mkdocs.yml").read_text()
    assert "extra_javascript:\n  - assets/mermaid.min.js\n" in config  # the local mermaid
    config = config.replace("extra_javascript:\n", "extra_javascript:\n  - assets/open-shadow.js\n")
    (root / "mkdocs.yml").write_text(config)
    built = subprocess.run(
        ["mkdocs", "build", "--strict", "-q", "-d", "site"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**env, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr
    (root / "harness.html").write_text(HARNESS.replace("site/index.html", f"site/{page}"))
    shown = subprocess.run(
        [CHROMIUM or "chromium", *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
        + [(root / "harness.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<div id="result">(.*?)</div>', shown.stdout, re.DOTALL)
    assert found, shown.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


def test_the_seed_page_draws_its_arrows_and_tabs(tmp_path):
    page = publish(tmp_path, "image-show.pcap")
    assert page["h1"] == ["Call flow"]
    assert page["h2"] == ["Sequence Diagram", "Request / Response", "Full Logs"]
    assert [h.split(" ", 1)[0] for h in page["h3"]] == [f"({n})" for n in range(1, 9)]
    assert page["tabs"] == ["Header", "Body"] * 8
    assert page["arrows"] == 8
    assert page["messages"][0] == "GET /identity/"
    assert sorted(page["actors"]) == ["glance-api", "keystone", "openstack"]


def test_captured_content_stays_inert_on_the_page(tmp_path):
    page = publish(tmp_path, "hostile.pcap")
    readme = "/v1/AUTH_x/docs/README.md;v=1"
    put = "/v1/AUTH_x/docs/a%20b;c=%3Cscript%3E#frag<b>bold</b>{{x}}`code`_em_*em*[l](u)"
    assert page["h3"] == [
        f"(1) GET {readme}",
        f"(2) 200 OK {readme}",
        f"(3) PUT {put}",
        f"(4) 201 Created ;#<i>x</i>`%% {put}",
        "(5) POST /v1/AUTH_x/docs",
        "(6) 202 Accepted /v1/AUTH_x/docs",
    ]
    assert page["h1"] == ["Call flow"]
    assert page["h2"] == ["Sequence Diagram", "Request / Response", "Full Logs"]
    assert page["tabs"] == ["Header", "Body"] * 6  # no tab from a body or a header
    # the API reference's and the log's, none from captured text
    assert sorted(set(page["admonitions"])) == ["admonition reference", "quote"]
    assert page["admonitions"].count("quote") == 1
    assert page["scripts"] == 0 and page["handlers"] == 0 and page["title"] != "pwned"
    # the diagram is drawn, every label as it was sent
    assert page["arrows"] == 6
    assert page["messages"][2] == f"PUT {put}"
    assert page["messages"][3] == f"201 Created ;#<i>x</i>`%% {put}"
    assert "ev`il;<b>x</b>#1 end" in page["actors"]
    # what would have been markup is shown as text, and no other file was pulled in
    code = page["code"]
    for line in ('=== "x"', '--8<-- "diagram.md"', ';--8<-- "log.md"', '!!! danger "pwned"'):
        assert f"\n{line}\n" in code
    assert '=== "cr"' in code and "{{ config.site_name }}" in code
    assert "<script>document.title='pwned'</script>" in code
    assert code.count("sequenceDiagram") == 0  # (the diagram's file, had it been included)


def test_wide_diagrams_scroll_instead_of_shrinking(tmp_path):
    page = publish(tmp_path, "server-create.pcap")
    assert page["arrows"] == 96
    assert page["width"] > page["pane"]  # wider than its column: it scrolls (the site's CSS)


def test_a_session_is_a_site_of_one_page_per_command(tmp_path):
    """The session's five commands: each page includes its own files (snippet paths from the
    project's docs), builds with --strict, and draws its own diagram; the index links them."""
    page = publish(tmp_path, "session.pcap", "command", "002-show-image/index.html")
    assert page["h1"] == ["Show Image"]
    assert page["arrows"] == 12 and page["tabs"] == ["Header", "Body"] * 12
    listing = (tmp_path / "site-project" / "docs" / "index.md").read_text()
    assert listing.count("/index.md)") == 6  # five commands and nova-compute's background
