"""report.html: one self-contained page, no external assets, that opens offline in a browser.

The sequence diagram is SVG drawn here (a lifeline per service, a numbered arrow per message,
nested calls indented and shaded), beside a list of calls with filters (service, status, text),
and the full request and response of whatever arrow or row is clicked. `#message=N` in the URL
opens message N. The page is written when the flow ends (it holds every call's data).
"""

from __future__ import annotations

import html

from ..content import encoded
from ..flow import Call, FlowMessage
from ..stats import Stats
from .sink import FileSink
from .text import body_block, header_lines, parts, title

ROW, LANE, TOP, LEFT = 28, 170, 60, 30
MAX_MESSAGES = 10_000  # a page for people, not for a month of traffic: the documents have all
MAX_BODY_TEXT = 64 << 10  # characters of a body shown; the rest is in body.md
MAX_TOTAL = 16 << 20  # characters of bodies and headers kept for the page in all


def _message_record(message: FlowMessage) -> dict:
    headers, _ = parts(message)
    language, shown = body_block(message)
    text = shown.decode("utf-8")
    if len(text) > MAX_BODY_TEXT:
        more = len(text) - MAX_BODY_TEXT
        text = text[:MAX_BODY_TEXT] + f"\n... ({more} more characters in body.md)"
    return {
        "n": message.number,
        "kind": message.kind,
        "call": message.call.id,
        "title": title(message),
        "headers": header_lines(headers),
        "body": text,
        "language": language,
    }


def _call_record(call: Call) -> dict:
    response = call.response
    return {
        "id": call.id,
        "caller": call.caller,
        "callee": call.callee,
        "method": call.request.method,
        "target": call.request.target,
        "status": response.status if response else None,
        "reason": response.reason if response else "",
        "ms": round(call.duration * 1000, 1) if call.duration is not None else None,
        "depth": call.depth,
        "numbers": call.numbers,
        "operation": {"title": call.operation.title, "url": call.operation.url}
        if call.operation
        else None,
        "incomplete": not call.complete,
        "note": call.note,
    }


def svg(messages: list[dict], calls: dict[str, dict]) -> str:
    """The sequence diagram: lifelines, then one arrow per message in number order."""
    services: list[str] = []
    for message in messages:
        call = calls[message["call"]]
        for name in (call["caller"], call["callee"]):
            if name not in services:
                services.append(name)
    x = {name: LEFT + LANE // 2 + i * LANE for i, name in enumerate(services)}
    height = TOP + ROW * (len(messages) + 1)
    width = LEFT * 2 + LANE * max(len(services), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="diagram" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        '<defs><marker id="head" markerWidth="8" markerHeight="8" refX="8" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="currentColor"/></marker></defs>',
    ]
    for name, position in x.items():
        out.append(
            f'<text class="service" x="{position}" y="{TOP - 25}" '
            f'text-anchor="middle">{html.escape(name)}</text>'
        )
        out.append(
            f'<line class="lifeline" x1="{position}" y1="{TOP - 15}" x2="{position}" '
            f'y2="{height - 10}"/>'
        )
    for row, message in enumerate(messages):
        call = calls[message["call"]]
        y = TOP + ROW * row + ROW // 2
        start, end = x[call["caller"]], x[call["callee"]]
        if message["kind"] == "response":
            start, end = end, start
        kind = "request" if message["kind"] == "request" else "response"
        shade = min(call["depth"], 4)
        out.append(
            f'<g class="arrow {kind} depth{shade}" data-n="{message["n"]}">'
            f'<rect class="hit" x="{min(start, end) - 4}" y="{y - ROW // 2 + 2}" '
            f'width="{abs(end - start) + 8 or 40}" height="{ROW - 4}"/>'
            f'<line x1="{start}" y1="{y}" x2="{end if end != start else start + 30}" '
            f'y2="{y}" marker-end="url(#head)"/>'
            f'<text x="{(start + end) // 2}" y="{y - 4}" text-anchor="middle">'
            f"({message['n']}) {html.escape(message['title'])}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>osflow-sniff: call flow</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;display:grid;grid-template-columns:1fr 40%;
height:100vh}#left{overflow:auto;padding:8px}#right{overflow:auto;border-left:1px solid #ccc;
padding:8px}.service{font-weight:bold}.lifeline{stroke:#bbb;stroke-dasharray:4 3}
.arrow line{stroke:currentColor;stroke-width:1.5}.arrow{cursor:pointer;color:#1f4e9c}
.arrow.response{color:#2e7d32}.arrow.response line{stroke-dasharray:5 3}.arrow text{font-size:11px;
fill:currentColor}.hit{fill:transparent}.depth1 .hit{fill:#f3f6fb}.depth2 .hit{fill:#e8eef8}
.depth3 .hit,.depth4 .hit{fill:#dde6f5}.arrow.selected .hit{fill:#ffe9a8}
table{border-collapse:collapse;width:100%;margin-top:8px}td,th{padding:2px 6px;
border-bottom:1px solid #eee;text-align:left;font-size:12px}tr.call{cursor:pointer}
tr.call:hover{background:#f5f5f5}tr.selected{background:#ffe9a8}pre{background:#f7f7f7;
padding:6px;overflow:auto;font-size:12px}#filters{display:flex;gap:6px;margin:6px 0}
</style></head><body>
<div id="left"><h1>Call flow</h1>__SVG__
<div id="filters"><select id="service"><option value="">all services</option></select>
<select id="status"><option value="">all statuses</option><option value="2">2xx</option>
<option value="3">3xx</option><option value="4">4xx</option><option value="5">5xx</option>
<option value="none">no response</option></select>
<input id="search" type="search" placeholder="search"></div>
<table><thead><tr><th>#</th><th>caller</th><th>callee</th><th>request</th><th>status</th>
<th>ms</th></tr></thead><tbody id="calls"></tbody></table></div>
<div id="right"><div id="details"><p>Click an arrow or a call.</p></div></div>
<script type="application/json" id="flow">__DATA__</script>
<script>
"use strict";
const flow = JSON.parse(document.getElementById("flow").textContent);
const calls = new Map(flow.calls.map(c => [c.id, c]));
const messages = new Map(flow.messages.map(m => [m.n, m]));
const text = (tag, content, cls) => { const e = document.createElement(tag);
  e.textContent = content; if (cls) e.className = cls; return e; };
function show(n) {
  const message = messages.get(n); if (!message) return;
  const call = calls.get(message.call);
  document.querySelectorAll(".selected").forEach(e => e.classList.remove("selected"));
  document.querySelectorAll(`.arrow[data-n="${n}"]`).forEach(e => e.classList.add("selected"));
  const row = document.querySelector(`tr[data-call="${CSS.escape(call.id)}"]`);
  if (row) row.classList.add("selected");
  const details = document.getElementById("details"); details.replaceChildren();
  details.append(text("h2", `(${message.n}) ${message.title}`));
  details.append(text("p", message.kind === "request" ? `${call.caller} → ${call.callee}`
                                                      : `${call.caller} ← ${call.callee}`));
  if (call.note) details.append(text("p", `Note: ${call.note}`));
  if (call.operation) { const a = document.createElement("a"); a.href = call.operation.url;
    a.textContent = call.operation.title; const p = text("p", "API reference: "); p.append(a);
    details.append(p); }
  details.append(text("h3", "Header"), text("pre", message.headers.join("\\n")));
  details.append(text("h3", "Body"), text("pre", message.body, "body " + message.language));
  for (const other of call.numbers) if (other !== n) {
    const b = text("button", `show (${other})`); b.onclick = () => show(other);
    details.append(b); }
  history.replaceState(null, "", `#message=${n}`);
}
function listCalls() {
  const service = document.getElementById("service").value;
  const status = document.getElementById("status").value;
  const search = document.getElementById("search").value.toLowerCase();
  const body = document.getElementById("calls"); body.replaceChildren();
  for (const call of [...calls.values()].sort((a, b) => a.numbers[0] - b.numbers[0])) {
    if (service && call.caller !== service && call.callee !== service) continue;
    const code = call.status === null ? "none" : String(call.status)[0];
    if (status && code !== status) continue;
    const line = `${call.caller} ${call.callee} ${call.method} ${call.target} ${call.status}`;
    if (search && !line.toLowerCase().includes(search)) continue;
    const row = document.createElement("tr"); row.className = "call";
    row.dataset.call = call.id;
    row.append(text("td", call.numbers[0]), text("td", call.caller), text("td", call.callee),
      text("td", "\\u00a0".repeat(2 * call.depth) + `${call.method} ${call.target}`),
      text("td", call.status === null ? "—" : `${call.status} ${call.reason}`),
      text("td", call.ms === null ? "" : call.ms));
    row.onclick = () => show(call.numbers[0]);
    body.append(row);
  }
}
const names = new Set(); calls.forEach(c => { names.add(c.caller); names.add(c.callee); });
for (const name of [...names].sort()) {
  const o = text("option", name); o.value = name;
  document.getElementById("service").append(o); }
for (const id of ["service", "status", "search"])
  document.getElementById(id).addEventListener("input", listCalls);
document.querySelectorAll(".arrow").forEach(a =>
  a.addEventListener("click", () => show(Number(a.dataset.n))));
listCalls();
const wanted = /message=(\\d+)/.exec(location.hash);
if (wanted) show(Number(wanted[1]));
</script></body></html>
"""


class HtmlSink(FileSink):
    """Keeps each message's display, writes the page when the flow ends."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.messages: list[dict] = []
        self.calls: dict[str, dict] = {}
        self.left_out = 0
        self.size = 0  # characters of bodies and headers kept

    def message(self, message: FlowMessage) -> None:
        if len(self.messages) < MAX_MESSAGES and self.size < MAX_TOTAL:
            record = _message_record(message)
            self.size += len(record["body"]) + sum(map(len, record["headers"]))
            self.messages.append(record)
        else:
            self.left_out += 1

    def call(self, call: Call) -> None:
        if self.messages and call.numbers[0] <= self.messages[-1]["n"]:
            self.calls[call.id] = _call_record(call)

    def close(self, stats: Stats) -> None:
        shown = [m for m in self.messages if m["call"] in self.calls]
        drawing = svg(shown, self.calls)
        note = (
            f"<p>The first {len(shown)} messages; {self.left_out} more are in body.md.</p>"
            if self.left_out
            else ""
        )
        data = encoded({"messages": shown, "calls": list(self.calls.values())})
        del shown
        self.messages.clear()  # the page's data is encoded: let the records go before writing
        before_svg, rest = PAGE.split("__SVG__")
        before_data, after_data = rest.split("__DATA__")
        # in pieces: the page is as large as the data, and it need not be copied whole
        for piece in (before_svg, note, drawing, before_data):
            self.out.write(piece)
        self.out.write(data.replace(b"</", b"<\\/").decode())  # no early </script>
        self.out.write(after_data)
        super().close(stats)
