"""Reading the files a user points vgrc at: one reader, one kind of error line.

Every input file (YAML vocabularies, captions CSV/JSON, Visual Genome and CLEVR JSON,
MIT-States' ``adj_ants.csv``) is read as UTF-8, with or without the byte-order mark that
spreadsheet programs write ("CSV UTF-8"). A missing, unreadable, binary or otherwise
non-UTF-8 file raises :class:`~vgrc.evaluators.errors.InvalidInputError` with one line
naming the option, the file and the fix, never a ``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from vgrc.evaluators.errors import InvalidInputError

__all__ = ["ENCODING", "IMAGE_EXTENSIONS", "reading", "read_text", "open_text"]

#: the image files vgrc picks up from a folder
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

#: UTF-8, a leading byte-order mark skipped
ENCODING = "utf-8-sig"


def _name(path, option: str | None) -> str:
    return f"{option} {path}" if option else str(path)


@contextlib.contextmanager
def reading(path: str | os.PathLike, option: str | None = None) -> Iterator[None]:
    """Turn the errors of reading ``path`` inside the block into one line naming it."""
    try:
        yield
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex() if isinstance(exc.object, bytes | bytearray) else "?"
        raise InvalidInputError(
            f"{_name(path, option)}: not UTF-8 text (byte 0x{byte} near byte {exc.start}; a binary file, or another "
            "encoding): save it as UTF-8"
        ) from None
    except FileNotFoundError:
        raise InvalidInputError(f"{_name(path, option)}: no such file") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{_name(path, option)} is a folder; expected a file") from None
    except OSError as exc:
        raise InvalidInputError(f"{_name(path, option)}: cannot read it ({exc.strerror or exc})") from None


def read_text(path: str | os.PathLike, option: str | None = None) -> str:
    """The whole file as text (see the module docstring)."""
    with reading(path, option):
        return Path(path).read_text(encoding=ENCODING)


def open_text(path: str | os.PathLike, option: str | None = None, **kwargs) -> IO[str]:
    """The file opened for reading text; wrap the reading in :func:`reading` too, since a
    bad byte is only found when it is read."""
    with reading(path, option):
        return open(path, encoding=ENCODING, **kwargs)
