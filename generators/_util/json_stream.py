"""Stream the elements of a top-level JSON array without loading the whole file.

Visual Genome's ``attributes.json`` is several hundred MB. ``json.load`` turns it into
several GB of Python objects. Here each element is decoded on its own
(``json.JSONDecoder.raw_decode`` on a sliding buffer), so memory stays at one chunk plus
one element.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

from vgrc.evaluators.errors import InvalidInputError
from vgrc.evaluators.user_files import ENCODING, reading

__all__ = ["iter_json_array", "MalformedJSONError"]


class MalformedJSONError(InvalidInputError):
    """The file is not a well-formed JSON array; the message gives file, line and column."""


def _where(path: Path, base: tuple[int, int], buf: str, pos: int) -> str:
    """``base``: (newlines before ``buf``, characters of the line that ``buf`` starts inside)."""
    line = base[0] + buf.count("\n", 0, pos) + 1
    nl = buf.rfind("\n", 0, pos)
    col = pos - nl if nl >= 0 else base[1] + pos + 1
    return f"{path}: line {line}, column {col}"


def iter_json_array(
    path: str | Path,
    chunk_chars: int = 1 << 22,
    max_element_chars: int = 1 << 26,
    on_offset: Callable[[int], None] | None = None,
    key: str | None = None,
) -> Iterator[object]:
    """Yield each element of the JSON array in ``path``.

    With ``key``, the file is a JSON object and the array is its member ``key`` (CLEVR's
    ``{"info": …, "scenes": [...]}``); the other members are decoded and skipped.
    ``on_offset(chars_consumed)`` is called after each buffer refill (for progress bars).

    Raises
    ------
    MalformedJSONError
        Not an array (or no such key), a malformed element, or a truncated file (with
        file, line and column).
    """
    path = Path(path)
    with reading(path):  # a byte that is not UTF-8 is found only when it is read: one line then
        yield from _iter_json_array(path, chunk_chars, max_element_chars, on_offset, key)


class _Reader:
    """A window of the file (``buf``, refilled in ``chunk_chars`` pieces, the consumed part
    dropped) with a cursor ``pos``; ``line_base`` / ``dropped`` keep error positions true."""

    def __init__(self, fh, path: Path, chunk_chars: int, max_element_chars: int, on_offset):
        self.fh, self.path, self.chunk_chars, self.max_element_chars, self.on_offset = fh, path, chunk_chars, max_element_chars, on_offset
        self.decoder = json.JSONDecoder()
        self.buf = fh.read(chunk_chars)
        self.eof = len(self.buf) < chunk_chars
        self.line_base = (0, 0)
        self.pos = 0
        self.dropped = 0

    def where(self, at: int) -> str:
        return _where(self.path, self.line_base, self.buf, at)

    def skip_ws(self, p: int) -> int:
        buf = self.buf
        while p < len(buf) and buf[p] in " \t\n\r":
            p += 1
        return p

    def more(self) -> bool:
        if self.eof:
            return False
        if self.on_offset:
            self.on_offset(self.dropped + self.pos)
        if self.pos > self.chunk_chars:  # drop what was consumed
            buf, pos = self.buf, self.pos
            nl = buf.rfind("\n", 0, pos)
            col = pos - nl - 1 if nl >= 0 else self.line_base[1] + pos
            self.line_base = (self.line_base[0] + buf.count("\n", 0, pos), col)
            self.dropped += pos
            self.buf, self.pos = buf[pos:], 0
        data = self.fh.read(self.chunk_chars)
        self.eof = len(data) < self.chunk_chars
        self.buf += data
        return bool(data)

    def next_char(self, where: str) -> str:
        """Skip white space (refilling) and return the next character; truncation is an error."""
        self.pos = self.skip_ws(self.pos)
        while self.pos >= len(self.buf) and self.more():
            self.pos = self.skip_ws(self.pos)
        if self.pos >= len(self.buf):
            raise MalformedJSONError(f"{self.where(self.pos)}: file ends inside {where} (truncated)")
        return self.buf[self.pos]

    def decode(self):
        """Decode one value at ``pos`` (refilling as needed) and move past it."""
        while True:  # pos is the value's start; more() keeps it so when trimming
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                break
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > self.max_element_chars or not self.more():
                    truncated = self.eof and (exc.pos >= len(self.buf.rstrip()) - 1 or exc.msg.startswith("Unterminated"))
                    what = "file ends inside an element (truncated)" if truncated else exc.msg
                    raise MalformedJSONError(f"{self.where(exc.pos)}: {what}") from None
        self.pos = end
        return value

    def seek_member(self, key: str) -> None:
        """Walk the top-level object to the value of its member ``key``."""
        if self.next_char("the object") != "{":
            raise MalformedJSONError(f"{self.where(self.pos)}: expected a JSON object ('{{') holding {key!r}")
        self.pos += 1
        while True:
            c = self.next_char("the object")
            if c == "}":
                raise MalformedJSONError(f"{self.path}: the JSON object has no {key!r} member")
            if c == ",":
                self.pos += 1
                continue
            name = self.decode()
            if self.next_char("the object") != ":":
                raise MalformedJSONError(f"{self.where(self.pos)}: expected ':' after the key {name!r}")
            self.pos += 1
            self.next_char("the object")
            if name == key:
                return
            self.decode()  # another member: skip it


def _iter_json_array(path: Path, chunk_chars: int, max_element_chars: int, on_offset, key) -> Iterator[object]:
    with open(path, encoding=ENCODING) as fh:
        r = _Reader(fh, path, chunk_chars, max_element_chars, on_offset)
        if key is not None:
            r.seek_member(key)
        if r.next_char("the file") != "[":
            raise MalformedJSONError(f"{r.where(r.pos)}: expected a JSON array ('[')")
        r.pos += 1
        expect_value = True
        first = True
        while True:
            c = r.next_char("the array")
            if c == "]" and (first or not expect_value):
                return
            if not expect_value:
                if c != ",":
                    raise MalformedJSONError(f"{r.where(r.pos)}: expected ',' or ']' between array elements")
                r.pos += 1
                expect_value = True
                continue
            yield r.decode()
            expect_value = False
            first = False
