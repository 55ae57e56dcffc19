"""Every shortcut taken for speed gives what the plain way gives."""

from __future__ import annotations

import json
import pickle
import re
from datetime import UTC, datetime

import pytest
from conftest import PCAPS
from hypothesis import given
from hypothesis import strategies as st

from sniffer import redact
from sniffer.content import display, encoded, pretty
from sniffer.flow import Body, Call
from sniffer.pcapfile import CaptureReader
from sniffer.pipeline import Options, Pipeline
from sniffer.render.jsonl import timestamp
from sniffer.render.sink import Sink


@given(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False))
def test_timestamp_matches_datetime(ts: float) -> None:
    plain = datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")
    assert timestamp(ts) == plain.replace("+00:00", "Z")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
)


@given(json_values)
def test_encoded_is_json(value: object) -> None:
    """orjson where it can, Python's encoder where it cannot (integers past 64 bits)."""
    assert json.loads(encoded(value)) == json.loads(json.dumps(value))


def test_encoded_keeps_lone_surrogates() -> None:
    """orjson refuses them; the fallback writes them as JSON escapes."""
    assert json.loads(encoded({"a": "x\udc80"})) == {"a": "x\udc80"}


class _Number(str):
    """A number as the body writes it."""


class _Pairs(list):
    """An object's members in order, duplicates kept."""


def _string(text: str) -> str:
    """A JSON string as json.dumps writes it, with the hex of \\u escapes in capitals."""
    escaped = json.dumps(text, ensure_ascii=False)
    return re.sub(
        r"\\(\\|u[0-9a-f]{4})", lambda m: m.group(0).upper().replace("\\U", "\\u"), escaped
    )


def _layout(value: object, depth: int = 0) -> str:
    """json.dumps(indent=2)'s layout, written out by hand for numbers as written and members
    as listed."""
    if isinstance(value, _Number):
        return value
    if isinstance(value, str):
        return _string(value)
    if not isinstance(value, list):
        return json.dumps(value)  # true, false, null
    pad, end = "\n" + "  " * (depth + 1), "\n" + "  " * depth
    if isinstance(value, _Pairs):
        members = [f"{_string(key)}: {_layout(each, depth + 1)}" for key, each in value]
        brackets = "{}"
    else:
        members = [_layout(each, depth + 1) for each in value]
        brackets = "[]"
    if not members:
        return brackets
    return brackets[0] + pad + ("," + pad).join(members) + end + brackets[1]


def _display_plainly(data: bytes) -> tuple[str, bytes]:
    """The plain way, with Python's parser: decode, parse, lay out. JSON that only Python reads
    (NaN, Infinity, lone surrogates) is shown as Python writes it, numbers included."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "text", f"<{len(data)} bytes of binary data>".encode()
    constants: list[str] = []
    try:
        value = json.loads(
            text,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=lambda name: constants.append(name) or _Number(name),
            object_pairs_hook=_Pairs,
        )
    except ValueError:
        return "text", text.rstrip("\n").encode()
    try:
        if not constants:
            return "json", _layout(value).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        pass
    return "json", pretty(json.loads(text))


body_bytes = (
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8"))
    | json_values.map(lambda value: json.dumps(value, indent=1).encode())
    | st.sampled_from(
        [
            b"NaN",
            b"[1e400, 1.10, -0, 1E5]",
            b"[123456789012345678901234567890]",
            b'{"a": 1, "a": [2, {"a": 3, "a": {}}]}',
            b"\xef\xbb\xbf{}",
            b'["\\ud800", 1.10]',
        ]
    )
    | st.text().map(lambda text: text.encode("utf-8", "surrogatepass"))
    | st.binary()
)


@given(body_bytes)
def test_display_lays_out_json_as_python_would_with_numbers_as_written(data: bytes) -> None:
    assert display(Body(data, len(data) or 1)) == _display_plainly(data)


def test_display_keeps_numbers_and_keys_as_sent() -> None:
    """What parsing into Python values would lose: big integers, number spellings, duplicates."""
    body = b'{"n": 123456789012345678901234567890, "f": [1.10, 1E5, -0], "k": 1, "k": 2}'
    shown = display(Body(body, len(body)))[1]
    assert shown == (
        b'{\n  "n": 123456789012345678901234567890,\n  "f": [\n    1.10,\n    1E5,\n    -0\n  ],'
        b'\n  "k": 1,\n  "k": 2\n}'
    )


def _any_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))
    )


secret_words = st.sampled_from(sorted(redact.SECRET_KEYS | {"token", "access_token", "id"}))
keys = secret_words.flatmap(_any_case) | st.text(max_size=12) | st.sampled_from(["to\u212aen"])
json_with_keys = st.recursive(
    st.none() | st.integers() | st.text(max_size=20) | secret_words,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)
masked_bodies = (
    json_with_keys.map(lambda value: json.dumps(value).encode())
    | json_with_keys.map(lambda value: json.dumps(value, ensure_ascii=False, indent=2).encode())
    | st.tuples(keys, st.text(max_size=10)).map(lambda kv: f"{kv[0]}={kv[1]}&a=b".encode())
    | st.binary(max_size=60)
)


@given(masked_bodies)
def test_secret_precheck_is_only_a_shortcut(data: bytes) -> None:
    """Masking with the pre-check gives what walking every body gives."""
    body = Body(data, len(data) or 1)
    quick = redact.body(body)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(redact, "may_hold_secret", lambda data: True)
        assert redact.body(body) == quick


def test_secret_precheck_sees_keys_in_any_ascii_case() -> None:
    for key in ("PASSWORD", "adminPass", "Token", "X-Secret"):
        assert redact.may_hold_secret(b'{"' + key.encode() + b'": 1}')
    assert not redact.may_hold_secret(b'{"id": "0000a3f5", "name": "vm-1"}')


@pytest.mark.parametrize("capture", ["server-create.pcap", "protocol.pcap", "image-upload.pcap"])
def test_flow_records_pickle_to_equal_records(capture: str) -> None:
    """The records pickle as their constructors' arguments (for the output process): every
    call of a capture comes back equal, field for field, and of the same classes."""
    calls: list[Call] = []
    collect = Sink()
    collect.call = calls.append  # type: ignore[method-assign]
    pipeline = Pipeline([collect], Options())
    with open(PCAPS / capture, "rb") as stream:
        pipeline.run(CaptureReader(capture, stream))
    pipeline.finish()
    assert calls
    for call in calls:
        hops = pickle.loads(pickle.dumps(call.hops, pickle.HIGHEST_PROTOCOL))
        assert hops == call.hops
        assert [type(hop.request.body) for hop in hops] == [Body] * len(hops)
        assert pickle.loads(pickle.dumps(call.operation)) == call.operation
    assert Body.__reduce__(Body(b"x", 1, "gzip", 5)) == (Body, (b"x", 1, "gzip", 5))
