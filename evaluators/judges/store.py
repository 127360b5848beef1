"""A judgement store shared by every run (issue 11): VLM answers are asked once.

One append-only JSON Lines file per judge model under ``<cache>/judgments/``. A record's
key is the sha256 of (judge model + weights revision, prompt hash, query text, image
content hash), so another stage 1 or reranker, or a resumed run, reuses every answer it
already has. Each batch is appended, flushed and fsynced: a run killed (even with
``kill -9``) loses at most the line being written, which the next load skips and counts
(``corrupt_lines``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["JudgmentStore", "judgment_key", "append_lines"]


def append_lines(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """Append text lines durably: one write, flush and fsync. If an interrupted write left
    the file ending inside a line, that line is ended first, so the new records stay
    readable (the torn one is skipped by readers)."""
    data = "".join(line + "\n" for line in lines)
    if not data:
        return
    try:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                data = "\n" + data
    except OSError:  # missing or empty
        pass
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def judgment_key(judge_id: str, prompt_hash: str, query: str, image_sha256: str) -> str:
    """The store key of one (judge, prompt, query, image) question."""
    return hashlib.sha256("\x1f".join((judge_id, prompt_hash, query, image_sha256)).encode("utf-8")).hexdigest()


class JudgmentStore:
    """``get`` / ``add`` answers by key; see the module documentation.

    Attributes
    ----------
    path : Path
    corrupt_lines : int
        Lines skipped at load (a torn last line after an interruption, or damage).
    added : int
        Answers added by this process.
    """

    def __init__(self, root: str | os.PathLike, judge_id: str, writer: int = 0):
        folder = Path(root) / "judgments"
        folder.mkdir(parents=True, exist_ok=True)
        base = hashlib.sha256(judge_id.encode()).hexdigest()[:24]
        # writer 0 appends to BASE.jsonl; a sharded run's rank r to BASE.rank-r.jsonl, so no
        # two processes ever append to one file. Reading takes them all.
        self.path = folder / (base + (f".rank-{writer}" if writer else "") + ".jsonl")
        self.judge_id = judge_id
        self.values: dict[str, dict] = {}
        self.corrupt_lines = 0
        self.added = 0
        for path in sorted(folder.glob(base + "*.jsonl")):
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                        self.values[rec["key"]] = rec["value"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        self.corrupt_lines += 1

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str) -> dict | None:
        return self.values.get(key)

    def add(self, items: Iterable[tuple[str, dict]]) -> None:
        """Append answers durably (one write, flush and fsync per call)."""
        items = list(items)
        if not items:
            return
        append_lines(self.path, (json.dumps({"key": k, "value": v}, separators=(",", ":")) for k, v in items))
        for k, v in items:
            self.values[k] = v
        self.added += len(items)
