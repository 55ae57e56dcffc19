"""report.html: one self-contained page, no external assets, that opens offline in a browser.

The sequence diagram is SVG drawn here (a lifeline per service, a numbered arrow per message,
nested calls indented and shaded) under filters (service, status, text) that apply to it and to
the list of calls below it, and the full request and response of whatever arrow or row is
clicked. The diagram keeps its size and scrolls, its service names stay in view, and
`#message=N` in the URL scrolls to message N and opens it. The page is written when the flow
ends (it holds every call's data).
"""

from __future__ import annotations

import html
import math

from ..content import encoded
from ..flow import Call, FlowMessage
from ..stats import Stats
from .sink import FileSink
from .text import body_block, header_lines, parts, target, title, tls_hops

ROW, TOP, HEADS = 28, 4, 30  # px: a message's row, above the first row, the names' band
LANE, PAD = 170, 12  # px: the least distance between lifelines, the margin around everything
LABEL_PX, NAME_PX = 11, 14  # font sizes of the arrows' labels and of the (bold) service names
SELF = 40  # px an arrow from a service to itself reaches right of its lifeline
MAX_MESSAGES = 10_000  # a page for people, not for a month of traffic: the documents have all
MAX_BODY_TEXT = 64 << 10  # characters of a body shown; the rest is in body.md
MAX_TOTAL = 16 << 20  # characters of bodies and headers kept for the page in all

# Widths in em, each at least what DejaVu Sans (the widest common sans-serif) draws: the layout
# is computed from them, so an estimate too large costs margin and one too small cuts a label.
NARROW, WIDE, BROAD = frozenset(" !'(),-./:;I[]fijlrt|`"), frozenset("mwMW@%"), "=#&~+<>^_"


def text_width(text: str, px: float, bold: bool = False) -> float:
    """An upper bound of the width of `text` drawn at `px` (the page's fonts are sans-serif)."""
    em = 0.0
    for char in text:
        if char in NARROW:
            em += 0.45
        elif char in WIDE:
            em += 1.05
        elif not char.isascii():
            em += 1.3  # CJK and most symbols are 1 em; the page measures and widens past this
        else:
            em += 0.86 if char.isupper() or char in BROAD else 0.68
    return em * px * (1.15 if bold else 1.0)


def _message_record(message: FlowMessage, templates: bool) -> dict:
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
        "title": title(message, templates),
        "headers": header_lines(headers),
        "body": text,
        "language": language,
    }


def _call_record(call: Call, templates: bool) -> dict:
    response = call.response
    return {
        "id": call.id,
        "caller": call.caller,
        "callee": call.callee,
        "method": call.request.method,
        "target": target(call, templates),
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
        "tls": tls_hops(call),
    }


def _label(message: dict) -> str:
    return f"({message['n']}) {message['title']}"


def _services(messages: list[dict], calls: dict[str, dict]) -> list[str]:
    """The services in the order they first appear: a lifeline each, left to right."""
    services: dict[str, None] = {}
    for message in messages:
        call = calls[message["call"]]
        services.setdefault(call["caller"])
        services.setdefault(call["callee"])
    return list(services)


def _ends(message: dict, calls: dict[str, dict], lanes: dict[str, int]) -> tuple[int, int]:
    """The x where a message's arrow starts and where it ends (the same for a self call)."""
    call = calls[message["call"]]
    start, end = lanes[call["caller"]], lanes[call["callee"]]
    return (end, start) if message["kind"] == "response" else (start, end)


def layout(messages: list[dict], calls: dict[str, dict]) -> tuple[dict[str, int], int]:
    """Each lifeline's x, and a width that holds every name and label as `text_width` sizes
    them: a label centred on a short arrow may reach past the outer lifelines."""
    services = _services(messages, calls)
    widest = max((text_width(name, NAME_PX, bold=True) for name in services), default=0)
    lane = max(LANE, math.ceil(widest) + 2 * PAD)  # names never overlap
    lanes = {name: i * lane for i, name in enumerate(services)}
    low, high = -lane / 2, (len(services) - 0.5) * lane
    for message in messages:
        start, end = _ends(message, calls, lanes)
        half = text_width(_label(message), LABEL_PX) / 2
        middle = (start + end) // 2
        low = min(low, middle - half)
        high = max(high, middle + half, max(start, end) + SELF)
    shift = PAD - math.floor(low)
    return {name: x + shift for name, x in lanes.items()}, math.ceil(high) + shift + PAD


def _svg_open(name: str, width: int, height: int, extra: str = "") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{name}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"{extra}>'
    )


def _heads(lanes: dict[str, int], width: int) -> str:
    """The service names, apart from the diagram so that the page can keep them in view."""
    out = [_svg_open("heads", width, HEADS)]
    for name, x in lanes.items():
        out.append(
            f'<text class="service" x="{x}" y="{HEADS - 10}" '
            f'text-anchor="middle">{html.escape(name)}</text>'
            f'<line class="lifeline" x1="{x}" y1="{HEADS - 5}" x2="{x}" y2="{HEADS}"/>'
        )
    out.append("</svg>")
    return "".join(out)


def _arrow(message: dict, calls: dict[str, dict], lanes: dict[str, int], top: int) -> str:
    """One message in the row starting at `top`: its label above its line."""
    call = calls[message["call"]]
    start, end = _ends(message, calls, lanes)
    y = top + 20
    kind = "request" if message["kind"] == "request" else "response"
    wide = abs(end - start) + 8 if end != start else SELF
    return (
        f'<g class="arrow {kind} depth{min(call["depth"], 4)}" data-n="{message["n"]}">'
        f'<rect class="hit" x="{min(start, end) - 4}" y="{top + 2}" '
        f'width="{wide}" height="{ROW - 4}"/>'
        f'<line x1="{start}" y1="{y}" x2="{end if end != start else start + SELF - 10}" '
        f'y2="{y}" marker-end="url(#head)"/>'
        f'<text x="{(start + end) // 2}" y="{y - 5}" text-anchor="middle">'
        f"{html.escape(_label(message))}</text></g>"
    )


def svg(messages: list[dict], calls: dict[str, dict]) -> str:
    """The sequence diagram: the service names, then the lifelines and one arrow per message
    in number order (the page moves rows up when filters hide some: it reads `data-row`)."""
    lanes, width = layout(messages, calls)
    height = TOP + ROW * len(messages) + PAD
    out = [
        _heads(lanes, width),
        _svg_open("diagram", width, height, f' data-row="{ROW}" data-top="{TOP}"'),
        '<defs><marker id="head" markerWidth="8" markerHeight="8" refX="8" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="currentColor"/></marker></defs>',
    ]
    for x in lanes.values():
        out.append(f'<line class="lifeline" x1="{x}" y1="0" x2="{x}" y2="{height}"/>')
    for row, message in enumerate(messages):
        out.append(_arrow(message, calls, lanes, TOP + ROW * row))
    out.append("</svg>")
    return "\n".join(out)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>osflow-sniff: call flow</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;display:grid;height:100vh;overflow:hidden;
grid-template-columns:minmax(0,1fr) 40%}#right{overflow:auto;border-left:1px solid #ccc;
padding:8px}#left{display:flex;flex-direction:column;gap:6px;min-height:0;overflow:auto;
padding:8px}h1{font-size:20px;margin:0}#left p{margin:0}#filters{display:flex;gap:6px;
flex-wrap:wrap}#chart{flex:0 1 auto;max-height:60vh;min-height:90px;overflow:auto;
border:1px solid #e4e4e4;scroll-padding-top:__HEADS__px}#chart svg{display:block}
#heads{position:sticky;top:0;z-index:1;background:#fff;box-shadow:0 1px #e4e4e4}
#list{flex:1 1 0;min-height:60px;overflow:auto}.service{font-weight:bold}
.lifeline{stroke:#bbb;stroke-dasharray:4 3}.arrow line{stroke:currentColor;stroke-width:1.5}
.arrow{cursor:pointer;color:#1f4e9c}.arrow.hidden{display:none}.arrow.response{color:#2e7d32}
.arrow.response line{stroke-dasharray:5 3}.arrow text{font-size:11px;fill:currentColor}
.hit{fill:transparent}.depth1 .hit{fill:#f3f6fb}.depth2 .hit{fill:#e8eef8}
.depth3 .hit,.depth4 .hit{fill:#dde6f5}.arrow.selected .hit{fill:#ffe9a8}
table{border-collapse:collapse;min-width:100%}td,th{padding:2px 6px;white-space:nowrap;
border-bottom:1px solid #eee;text-align:left;font-size:12px}th{position:sticky;top:0;
background:#fff}tr.call{cursor:pointer}tr.call:hover{background:#f5f5f5}
tr.selected{background:#ffe9a8}pre{background:#f7f7f7;padding:6px;overflow:auto;font-size:12px}
</style></head><body>
<div id="left"><h1>Call flow</h1>__NOTE__
<div id="filters"><select id="service"><option value="">all services</option></select>
<select id="status"><option value="">all statuses</option><option value="2">2xx</option>
<option value="3">3xx</option><option value="4">4xx</option><option value="5">5xx</option>
<option value="none">no response</option></select>
<input id="search" type="search" placeholder="search"></div>
<div id="chart">__SVG__</div>
<div id="list"><table><thead><tr><th>#</th><th>caller</th><th>callee</th><th>request</th>
<th>status</th><th>ms</th></tr></thead><tbody id="calls"></tbody></table></div></div>
<div id="right"><div id="details"><p>Click an arrow or a call.</p></div></div>
<script type="application/json" id="flow">__DATA__</script>
<script>
"use strict";
const flow = JSON.parse(document.getElementById("flow").textContent);
const calls = new Map(flow.calls.map(c => [c.id, c]));
const messages = new Map(flow.messages.map(m => [m.n, m]));
const byId = id => document.getElementById(id);
const diagram = byId("diagram"), heads = byId("heads");
const arrows = [...diagram.querySelectorAll(".arrow")];  // in row order
let current = null;  // the id of the call shown
const text = (tag, content, cls) => { const e = document.createElement(tag);
  e.textContent = content; if (cls) e.className = cls; return e; };
// show message n; scroll ("center", "nearest"): bring its arrow and row into view
function show(n, scroll) {
  const message = messages.get(n); if (!message) return;
  const call = calls.get(message.call); current = call.id;
  document.querySelectorAll(".selected").forEach(e => e.classList.remove("selected"));
  const arrow = diagram.querySelector(`.arrow[data-n="${n}"]`);
  if (arrow) arrow.classList.add("selected");
  const row = document.querySelector(`tr[data-call="${CSS.escape(call.id)}"]`);
  if (row) row.classList.add("selected");
  if (scroll && row) row.scrollIntoView({block: "nearest"});
  if (scroll && arrow) arrow.scrollIntoView({block: scroll, inline: scroll});
  const details = byId("details"); details.replaceChildren();
  details.append(text("h2", `(${message.n}) ${message.title}`));
  details.append(text("p", message.kind === "request" ? `${call.caller} → ${call.callee}`
                                                      : `${call.caller} ← ${call.callee}`));
  if (call.note) details.append(text("p", `Note: ${call.note}`));
  if (call.tls.length) details.append(text("p", `Read from inside TLS: ${call.tls.join(", ")}`));
  if (call.operation) { const a = document.createElement("a"); a.href = call.operation.url;
    a.textContent = call.operation.title; const p = text("p", "API reference: "); p.append(a);
    details.append(p); }
  details.append(text("h3", "Header"), text("pre", message.headers.join("\\n")));
  details.append(text("h3", "Body"), text("pre", message.body, "body " + message.language));
  for (const other of call.numbers) if (other !== n) {
    const b = text("button", `show (${other})`); b.onclick = () => show(other, "nearest");
    details.append(b); }
  history.replaceState(null, "", `#message=${n}`);
}
// the ids of the calls the filters let through
function kept() {
  const service = byId("service").value, status = byId("status").value;
  const search = byId("search").value.toLowerCase();
  const keep = new Set();
  for (const call of calls.values()) {
    if (service && call.caller !== service && call.callee !== service) continue;
    const code = call.status === null ? "none" : String(call.status)[0];
    if (status && code !== status) continue;
    const line = `${call.caller} ${call.callee} ${call.method} ${call.target} ${call.status}`;
    if (search && !line.toLowerCase().includes(search)) continue;
    keep.add(call.id);
  }
  return keep;
}
function listCalls(keep) {
  const body = byId("calls"); body.replaceChildren();
  for (const call of [...calls.values()].sort((a, b) => a.numbers[0] - b.numbers[0])) {
    if (!keep.has(call.id)) continue;
    const row = document.createElement("tr");
    row.className = call.id === current ? "call selected" : "call";
    row.dataset.call = call.id;
    row.append(text("td", call.numbers[0]), text("td", call.caller), text("td", call.callee),
      text("td", "\\u00a0".repeat(2 * call.depth) + `${call.method} ${call.target}`),
      text("td", call.status === null ? "—" : `${call.status} ${call.reason}`),
      text("td", call.ms === null ? "" : call.ms));
    row.onclick = () => show(call.numbers[0], "nearest");
    body.append(row);
  }
}
// hide the arrows of the calls filtered out and move the others up to close the gaps
function drawArrows(keep) {
  const step = Number(diagram.dataset.row); let rows = 0;
  arrows.forEach((arrow, i) => {
    const shown = keep.has(messages.get(Number(arrow.dataset.n)).call);
    arrow.classList.toggle("hidden", !shown);
    if (shown) arrow.setAttribute("transform", `translate(0 ${(rows++ - i) * step})`);
  });
  const height = Number(diagram.dataset.top) + step * rows + __PAD__;
  diagram.setAttribute("height", height); diagram.viewBox.baseVal.height = height;
  diagram.querySelectorAll(".lifeline").forEach(line => line.setAttribute("y2", height));
}
function filter() { const keep = kept(); listCalls(keep); drawArrows(keep); }
// the width was computed from estimates: should a font draw wider, widen to every text's box
function fit() {
  let low = Infinity, high = -Infinity;
  for (const svg of [heads, diagram]) for (const label of svg.querySelectorAll("text")) {
    const box = label.getBBox(); low = Math.min(low, box.x);
    high = Math.max(high, box.x + box.width); }
  const box = diagram.viewBox.baseVal;
  if (low >= box.x && high <= box.x + box.width) return;
  const x = Math.min(box.x, Math.floor(low) - 4);
  const width = Math.max(box.x + box.width, Math.ceil(high) + 4) - x;
  for (const svg of [heads, diagram]) { svg.viewBox.baseVal.x = x;
    svg.viewBox.baseVal.width = width; svg.setAttribute("width", width); }
  diagram.dataset.widened = "true";
}
function openHash() {
  const wanted = /message=(\\d+)/.exec(location.hash);
  if (wanted) show(Number(wanted[1]), "center");
}
const names = new Set(); calls.forEach(c => { names.add(c.caller); names.add(c.callee); });
for (const name of [...names].sort()) {
  const o = text("option", name); o.value = name; byId("service").append(o); }
for (const id of ["service", "status", "search"])
  byId(id).addEventListener("input", filter);
arrows.forEach(a => a.addEventListener("click", () => show(Number(a.dataset.n), "nearest")));
window.addEventListener("hashchange", openHash);
fit();
filter();
openHash();
</script></body></html>
"""


class HtmlSink(FileSink):
    """Keeps each message's display, writes the page when the flow ends; with `templates`,
    paths read as their API templates (`--template-ids`), as in the other documents."""

    def __init__(self, path: str, templates: bool = False) -> None:
        super().__init__(path)
        self.templates = templates
        self.messages: list[dict] = []
        self.calls: dict[str, dict] = {}
        self.left_out = 0
        self.size = 0  # characters of bodies and headers kept

    def message(self, message: FlowMessage) -> None:
        if len(self.messages) < MAX_MESSAGES and self.size < MAX_TOTAL:
            record = _message_record(message, self.templates)
            self.size += len(record["body"]) + sum(map(len, record["headers"]))
            self.messages.append(record)
        else:
            self.left_out += 1

    def call(self, call: Call) -> None:
        if self.messages and call.numbers[0] <= self.messages[-1]["n"]:
            self.calls[call.id] = _call_record(call, self.templates)

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
        page = PAGE.replace("__HEADS__", str(HEADS)).replace("__PAD__", str(PAD))
        before_svg, rest = page.replace("__NOTE__", note).split("__SVG__")
        before_data, after_data = rest.split("__DATA__")
        # in pieces: the page is as large as the data, and it need not be copied whole
        for piece in (before_svg, drawing, before_data):
            self.out.write(piece)
        # "<" only occurs in JSON strings, where \u003c reads the same: no "</script>" or
        # "<!--" (which would change where the script ends) can come from the data
        self.out.write(data.replace(b"<", b"\\u003c").decode())
        self.out.write(after_data)
        super().close(stats)
