"""Bodies for display: content-decoding with a size bound, then indented JSON or text."""

from __future__ import annotations

import json
import zlib

import orjson
from yyjson import Document, ReaderFlags, WriterFlags

from .flow import Body

MAX_DECODED = 8 << 20  # never inflate past this, whatever the body claims


def decoded(body: Body, limit: int = MAX_DECODED) -> bytes:
    """The body's bytes with gzip/deflate undone (bounded); as sent if that fails."""
    encoding = body.encoding.strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        modes = (16 + zlib.MAX_WBITS,) if "gzip" in encoding else (zlib.MAX_WBITS, -zlib.MAX_WBITS)
        for wbits in modes:
            try:
                inflater = zlib.decompressobj(wbits)
                return inflater.decompress(body.data, limit)
            except zlib.error:
                continue
    return body.data


def display(body: Body) -> tuple[str, bytes]:
    """(code block language, UTF-8 text) for a body: pretty JSON, text, or a note for binary
    data. Bytes, as the documents are written: a body is never decoded only to be encoded."""
    if not body.size:
        return "json", b"none"
    data = decoded(body)
    note = f"\n... ({body.omitted} more bytes not kept)".encode() if body.truncated else b""
    try:  # the usual body: UTF-8 JSON, indented straight from its bytes
        return "json", indented(data) + note
    except ValueError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "text", f"<{body.size} bytes of binary data>".encode()
    try:
        return "json", pretty(json.loads(text)) + note  # what yyjson refuses: NaN, lone surrogates
    except (ValueError, RecursionError):  # not JSON, or nested too deep to show indented
        return "text", data.rstrip(b"\n") + note


def indented(data: bytes) -> bytes:
    """UTF-8 JSON laid out as json.dumps(indent=2, ensure_ascii=False) lays it out, with every
    number as written and every key kept, duplicates too; ValueError if it is not JSON. yyjson
    reads the bytes into its own tree and writes them again, without a Python object per value:
    3x faster than orjson's parse and write, the documents' largest cost, and faithful where that
    parse is not (it turns integers past 64 bits into floats and keeps the last duplicate key)."""
    document = Document(data, flags=ReaderFlags.NUMBERS_AS_RAW)
    return document.dumps(flags=WriterFlags.PRETTY_TWO_SPACES).encode("utf-8")


def parse(text: str) -> object:
    """JSON, fast; Python's parser for what orjson refuses (NaN, integers past 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def pretty(value: object) -> bytes:
    """A parsed value as JSON with a 2-space indent, as json.dumps(indent=2, ensure_ascii=False)
    writes it (orjson where it can)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except (TypeError, orjson.JSONEncodeError):  # orjson stops at 254 levels, and at lone
        # surrogates, which JSON escapes can hold: UTF-8 cannot, so they stay escapes
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False)
        except RecursionError:
            raise ValueError("nested too deep to indent") from None
        return text.encode("utf-8", "backslashreplace")


def encoded(value: object) -> bytes:
    """Compact JSON as UTF-8 bytes for the exports (calls.jsonl, HAR, the report's data):
    orjson, or Python's encoder for what orjson refuses (integers past 64 bits, lone surrogates)."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")
