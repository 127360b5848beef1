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


def _iter_json_array(path: Path, chunk_chars: int, max_element_chars: int, on_offset, key) -> Iterator[object]:
    decoder = json.JSONDecoder()
    with open(path, encoding=ENCODING) as fh:
        buf = fh.read(chunk_chars)
        eof = len(buf) < chunk_chars
        line_base = (0, 0)
        pos = 0
        dropped = 0

        def skip_ws(p: int) -> int:
            while p < len(buf) and buf[p] in " \t\n\r":
                p += 1
            return p

        def more() -> bool:
            nonlocal buf, eof, pos, line_base, dropped
            if eof:
                return False
            if on_offset:
                on_offset(dropped + pos)
            if pos > chunk_chars:  # drop what was consumed
                nl = buf.rfind("\n", 0, pos)
                col = pos - nl - 1 if nl >= 0 else line_base[1] + pos
                line_base = (line_base[0] + buf.count("\n", 0, pos), col)
                dropped += pos
                buf, pos = buf[pos:], 0
            data = fh.read(chunk_chars)
            eof = len(data) < chunk_chars
            buf += data
            return bool(data)

        def next_char(where: str) -> str:
            """Skip white space (refilling) and return the next character; truncation is an error."""
            nonlocal pos
            pos = skip_ws(pos)
            while pos >= len(buf) and more():
                pos = skip_ws(pos)
            if pos >= len(buf):
                raise MalformedJSONError(f"{_where(path, line_base, buf, pos)}: file ends inside {where} (truncated)")
            return buf[pos]

        def decode():
            """Decode one value at ``pos`` (refilling as needed) and move past it."""
            nonlocal pos
            while True:  # pos is the value's start; more() keeps it so when trimming
                try:
                    value, end = decoder.raw_decode(buf, pos)
                    break
                except json.JSONDecodeError as exc:
                    if len(buf) - pos > max_element_chars or not more():
                        truncated = eof and (exc.pos >= len(buf.rstrip()) - 1 or exc.msg.startswith("Unterminated"))
                        what = "file ends inside an element (truncated)" if truncated else exc.msg
                        raise MalformedJSONError(f"{_where(path, line_base, buf, exc.pos)}: {what}") from None
            pos = end
            return value

        if key is not None:  # walk the top-level object to the member `key`
            if next_char("the object") != "{":
                raise MalformedJSONError(f"{_where(path, line_base, buf, pos)}: expected a JSON object ('{{') holding {key!r}")
            pos += 1
            while True:
                c = next_char("the object")
                if c == "}":
                    raise MalformedJSONError(f"{path}: the JSON object has no {key!r} member")
                if c == ",":
                    pos += 1
                    continue
                name = decode()
                if next_char("the object") != ":":
                    raise MalformedJSONError(f"{_where(path, line_base, buf, pos)}: expected ':' after the key {name!r}")
                pos += 1
                next_char("the object")
                if name == key:
                    break
                decode()  # another member: skip it
        if next_char("the file") != "[":
            raise MalformedJSONError(f"{_where(path, line_base, buf, pos)}: expected a JSON array ('[')")
        pos += 1
        expect_value = True
        first = True
        while True:
            c = next_char("the array")
            if c == "]" and (first or not expect_value):
                return
            if not expect_value:
                if c != ",":
                    raise MalformedJSONError(f"{_where(path, line_base, buf, pos)}: expected ',' or ']' between array elements")
                pos += 1
                expect_value = True
                continue
            yield decode()
            expect_value = False
            first = False
