r"""VLM-graded relevance for ``vgrc eval --relevance vlm`` (paper §5, App. G, H; issue 11).

Only the (query, image) pairs that appear in some reported top-K list (stage 1 and final)
are judged, and each is asked at most once across runs: answers live in the shared
:class:`~vgrc.evaluators.judges.store.JudgmentStore`, keyed by judge model + weights
revision + mode, prompt hash, query text and image content hash.

Per pair:

- ``grade`` — the Query Alignment Score in [0, 4] (App. G), the graded relevance of nDCG@K
  (App. H's formula, IDCG over the same retrieved items);
- ``cas_noun`` — the mean, over the query's objects that carry attributes, of the
  Attribute–Noun judge's confidence that the image shows that noun with those
  attributes (App. G's CAS prompt; the attributes joined in caption order) — CAS-noun@K;
- ``cas_gen`` — ``grade / 4``: how strongly the image reflects the whole query as one
  target concept (App. H's CAS with the query as the concept) — CAS-gen@K.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vgrc.evaluators.judges.store import JudgmentStore, judgment_key
from vgrc.evaluators.judges.vlm import CAS_PROMPT, QAS_PROMPT, prompt_hash

__all__ = ["judge_identity", "JudgedRelevance", "judge_pairs"]


def judge_identity(model: str, mode: str) -> str:
    """Judge model + weights revision + mode: a local folder by its config's size and
    mtime, a hub id by the cached snapshot's commit."""
    import os

    path = Path(os.path.expanduser(model))
    if path.exists():
        cfg = path / "config.json"
        st = cfg.stat() if cfg.exists() else path.stat()
        revision = f"{path.resolve()}:{st.st_size}:{int(st.st_mtime)}"
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
        revision = Path(found).parent.name if isinstance(found, str) else "unknown"
    return f"{model}@{revision}|{mode}"


@dataclass
class JudgedRelevance:
    """Per-pair judgements and the counts recorded in ``run.json``."""

    grade: dict[tuple[int, int], float] = field(default_factory=dict)
    cas_gen: dict[tuple[int, int], float] = field(default_factory=dict)
    cas_noun: dict[tuple[int, int], float] = field(default_factory=dict)
    #: distinct judgements needed (QAS and attribute-noun questions): made + reused == distinct
    distinct: int = 0
    made: int = 0
    reused: int = 0
    #: distinct judgements whose answer could not be parsed (``--judge-mode json``): ≤ distinct
    unparsable: int = 0
    model_seconds: float = 0.0
    total_seconds: float = 0.0

    def matrices(self, lists: np.ndarray, *, unparsable: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """grade, cas_gen, cas_noun for ranked lists (Q, K) of gallery indices; a judgement
        whose answer could not be parsed is ``unparsable`` (0: counted as irrelevant; NaN:
        to tell it apart)."""
        shape = lists.shape
        out = [np.zeros(shape) for _ in range(3)]
        for q in range(shape[0]):
            for j in range(shape[1]):
                key = (q, int(lists[q, j]))
                out[0][q, j] = self.grade[key]
                out[1][q, j] = self.cas_gen[key]
                out[2][q, j] = self.cas_noun[key]
        for m in out:
            m[np.isnan(m)] = unparsable
        return out[0], out[1], out[2]


def _image_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_answers(store, questions, result: JudgedRelevance) -> None:
    """Fill ``result``'s per-pair grades from the store: the integer QAS grade (NaN when
    its answer did not parse), grade / 4 for CAS-gen, and the mean attribute-noun
    confidence of the pair's questions for CAS-noun-vlm; count distinct unparsable answers."""
    per_pair_cas: dict[tuple[int, int], list[float]] = {}
    unparsable: set[str] = set()
    for kind, key, pair, _, _ in questions:
        value = store.get(key)
        if kind == "qas":
            # the integer grade, as App. H grades: logits records kept the expectation in
            # "grade" before issue 22 and carry the argmax beside it, so stored answers still apply
            grade = value["argmax"] if "argmax" in value else value.get("grade")
            if grade is None:  # an unparsable JSON answer: NaN here (its query leaves the judged metrics), and counted
                unparsable.add(key)
                grade = float("nan")
            result.grade[pair] = float(grade)
            result.cas_gen[pair] = float(grade) / 4.0
        else:
            conf = value.get("confidence")
            if conf is None:
                unparsable.add(key)
                continue
            per_pair_cas.setdefault(pair, []).append(float(conf))
    asked_cas = {pair for kind, _, pair, _, _ in questions if kind == "cas"}
    for pair in result.grade:
        values = per_pair_cas.get(pair)
        # no attribute to ask about: 0 as before; asked but no answer parsed: NaN
        result.cas_noun[pair] = float(np.mean(values)) if values else (float("nan") if pair in asked_cas else 0.0)
    result.unparsable = len(unparsable)


def judge_pairs(
    pairs: Sequence[tuple[int, int]],
    captions: Sequence[str],
    query_objects: Sequence[list[dict]],
    image_paths: Sequence[Path],
    *,
    judge_factory: Callable[[], object],
    judge_id: str,
    mode: str,
    store_root: str | Path,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
) -> JudgedRelevance:
    """Judge ``pairs`` (query index, gallery index), asking only what the store lacks.

    ``judge_factory()`` builds the judge (a :class:`~vgrc.evaluators.judges.vlm.QwenAppGJudge`)
    only when something must be asked, so a fully cached run loads no model.
    """
    from vgrc.evaluators import sharding

    t_start = time.perf_counter()
    rank, size = sharding.world()
    store = JudgmentStore(store_root, judge_id, writer=rank)
    qas_h, cas_h = prompt_hash(QAS_PROMPT) + mode, prompt_hash(CAS_PROMPT) + mode
    shas: dict[int, str] = {}
    result = JudgedRelevance()
    questions = []  # (kind, key, pair, image index, payload)
    for q, g in pairs:
        if g not in shas:
            shas[g] = _image_sha(image_paths[g])
        questions.append(("qas", judgment_key(judge_id, qas_h, captions[q], shas[g]), (q, g), g, captions[q]))
        for o in query_objects[q]:
            if o.get("attributes"):
                attr = " ".join(o["attributes"])
                questions.append(("cas", judgment_key(judge_id, cas_h, f"{o['noun']}|{attr}", shas[g]), (q, g), g, (o["noun"], attr)))
    todo = [qu for qu in questions if qu[1] not in store]
    unique_todo = list({qu[1]: qu for qu in todo}.values())
    result.distinct = len({qu[1] for qu in questions})
    result.reused = result.distinct - len(unique_todo)
    if size > 1:  # every rank lists what the store lacks before any rank adds to it: the same list, hence the same batches
        sharding.barrier()
    # the batches one process would ask; sharded, rank r asks every size-th of them (same batches, same answers)
    plan = []
    for kind in ("qas", "cas"):
        items = [qu for qu in unique_todo if qu[0] == kind]
        plan += [(kind, items[s : s + batch_size]) for j, s in enumerate(range(0, len(items), batch_size)) if j % size == rank]
    judge = judge_factory() if plan else None
    done, total = 0, sum(len(part) for _, part in plan)
    from PIL import Image

    for kind, part in plan:
        images = [Image.open(image_paths[qu[3]]).convert("RGB") for qu in part]
        t0 = time.perf_counter()
        if kind == "qas":
            answers = judge.qas(images, [qu[4] for qu in part], mode=mode)
        else:
            answers = judge.attribute_noun(images, [qu[4][0] for qu in part], [qu[4][1] for qu in part], mode=mode)
        result.model_seconds += time.perf_counter() - t0
        store.add([(qu[1], ans) for qu, ans in zip(part, answers)])
        result.made += len(part)
        done += len(part)
        if on_progress:
            on_progress(done, total)
    if size > 1:
        sharding.barrier()
        store = JudgmentStore(store_root, judge_id, writer=rank)
        result.made = int(sharding.gather_rows(np.array([result.made])).sum())  # every rank's questions
    _read_answers(store, questions, result)
    result.total_seconds = time.perf_counter() - t_start
    return result
