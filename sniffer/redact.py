"""Secrets seen on the wire stay the user's: tokens and passwords are masked in every output.

Credentials in headers become `<redacted:1a2b3c4d>`, a fingerprint (the first hex digits of the
value's SHA-256) that is the same wherever the same token appears, so a reader can still follow a
token from the response that issued it to the requests that use it. Passwords and other
low-entropy secrets in bodies become a bare `<redacted>`: a short hash of a weak password could be
reversed by guessing. Correlation runs on the real values; only what is written is masked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import TypeVar, overload

from .content import decoded, encoded, parse
from .flow import Body, Call, Exchange, Headers, Request, Response

SECRET_HEADERS = frozenset(
    {
        "x-auth-token",
        "x-subject-token",
        "x-service-token",
        "x-storage-token",
        "x-auth-key",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    }
)
# an option whose value is a secret, and the value (`--os-password X`, `--os-token=X`)
SECRET_OPTION = re.compile(
    r"(--?[\w-]*(?:password|token|secret|credential|passwd|key)[\w-]*)(=|\s+)(\S+)", re.I
)
SCHEMES = ("Bearer ", "Basic ", "Negotiate ", "Digest ")
# keys whose values are secrets wherever they appear in a JSON body
SECRET_KEYS = frozenset(
    {
        "password",
        "original_password",
        "new_password",
        "adminpass",
        "admin_pass",
        "secret",
        "secret_key",
        "passcode",
        "totp",
    }
)
# keys whose values are tokens (high entropy: fingerprinted) inside these objects
TOKEN_KEYS = {"token": "id", "access_token": None}
MASK = "<redacted>"
# every secret key contains one of these: a body with none of them holds no secret we know
MARKS = (b"pass", b"secret", b"token", b"totp")
# keys are matched in any ASCII case (the keys services read are ASCII)
_LOWER = bytes(range(256)).lower()
_NOT_LETTERS = bytes(c for c in range(256) if not (chr(c).isascii() and chr(c).isalpha()))
M = TypeVar("M", Request, Response)
# for what is not JSON or not read as JSON (a form, a body cut by the bound, nesting too deep):
# a secret key's value (a string, what is left of one at the cut, or a number or literal), a
# token object's id, a form field
_KEYS = "|".join(sorted(SECRET_KEYS | {key for key, inner in TOKEN_KEYS.items() if not inner}))
_STRING = r'"(?:[^"\\]|\\.)*(?:"|\\?$)'
TEXT_SECRET = re.compile(
    rf'(?i)("(?:{_KEYS})"\s*:\s*)(?:{_STRING}|[^\s,\]}}{{\[][^\s,\]}}]*)'
    rf'|("token"\s*:\s*\{{[^{{}}]*?"id"\s*:\s*){_STRING}'
    rf"|((?:{_KEYS})=)[^&\s]*",
    re.ASCII,
)


def fingerprint(value: str) -> str:
    return f"<redacted:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:8]}>"


def header_value(name: str, value: str) -> str:
    if name.lower() not in SECRET_HEADERS:
        return value
    for scheme in SCHEMES:
        if value.startswith(scheme):
            return scheme + fingerprint(value[len(scheme) :])
    return fingerprint(value)


def headers(pairs: Headers) -> Headers:
    """The headers with credentials fingerprinted (the same tuple when there are none)."""
    if not any(name.lower() in SECRET_HEADERS for name, _ in pairs):
        return pairs
    return tuple((name, header_value(name, value)) for name, value in pairs)


@overload
def _walk(node: dict[str, object]) -> dict[str, object]: ...
@overload
def _walk(node: object) -> object: ...
def _walk(node: object) -> object:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            lowered = key.lower() if key.isascii() else ""
            if lowered in SECRET_KEYS and not isinstance(value, dict | list):
                out[key] = MASK
            elif lowered in TOKEN_KEYS and isinstance(value, str):
                out[key] = fingerprint(value)
            elif (
                lowered == "token" and isinstance(value, dict) and isinstance(value.get("id"), str)
            ):
                out[key] = {**_walk(value), "id": fingerprint(value["id"])}
            else:
                out[key] = _walk(value)
        return out
    if isinstance(node, list):
        return [_walk(item) for item in node]
    return node


def _mask_match(match: re.Match[str]) -> str:
    key, token, field = match.groups()
    if field:
        return field + MASK
    return (key or token) + f'"{MASK}"'


def may_hold_secret(data: bytes) -> bool:
    """Whether a body mentions a secret key at all: most do not, and this is cheaper than
    parsing them. Only the letters are searched, lowercased: no mark holds anything else, and
    CPython's substring search slows down several times over the digits and punctuation of
    JSON (they collide with the marks' letters in its filter). Letters joined across what was
    dropped may match where there is no key: then the walk finds nothing to mask."""
    letters = data.translate(_LOWER, _NOT_LETTERS)
    return any(mark in letters for mark in MARKS)


def body(original: Body) -> Body:
    """The body with its secrets masked, content-decoded (the outputs show it decoded, and this
    way it is inflated once); as sent where there is nothing to mask."""
    if not original.size:
        return original
    data = decoded(original)
    plain = original if data is original.data else Body(data, original.size, "", original.omitted)
    try:  # first: on binary data (image transfers) this fails within a few bytes
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return plain  # binary: nothing readable to leak in a text document
    if not may_hold_secret(data):
        return plain  # no key that could hold a secret: nothing to walk or match
    try:
        value = parse(text)
        walked = _walk(value)
        if walked == value:
            return plain
        masked = encoded(walked)
    except (ValueError, RecursionError):
        # not JSON (a form, JSON cut by the body bound), or nested deeper than Python's
        # recursion goes: mask by pattern
        masked = TEXT_SECRET.sub(_mask_match, text).encode("utf-8")
    if masked == data:
        return plain
    return Body(masked, original.size, "", original.omitted)


def message(original: M) -> M:
    """A request or response with its secrets masked (itself when it holds none)."""
    masked = headers(original.headers), headers(original.trailers), body(original.body)
    if masked == (original.headers, original.trailers, original.body):
        return original
    return replace(original, headers=masked[0], trailers=masked[1], body=masked[2])


def exchange(hop: Exchange) -> Exchange:
    request = message(hop.request)
    response = message(hop.response) if hop.response is not None else None
    if request is hop.request and response is hop.response:
        return hop
    return replace(hop, request=request, response=response)


def call(original: Call) -> Call:
    """A copy of a call for writing: same identity and numbering, secrets masked."""
    masked = replace(original, hops=[exchange(hop) for hop in original.hops])
    command = original.command
    if command is not None and command.line:
        masked.command = replace(command, line=command_line(command.line))
    return masked


def command_line(line: str) -> str:
    """A command line with the values of its secret options masked (`--os-password X`)."""
    return SECRET_OPTION.sub(r"\1\2<redacted>", line)
