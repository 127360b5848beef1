"""The paper's reported figures (Tables 1–7), as data, for ``vgrc report --paper N``.

Transcribed from the reference text (``shared/reference/geometry-aware-clip-retrieval.txt``,
§6.1, §6.2, App. B, App. C). Its table captions did not survive extraction, so the
dataset of Tables 1, 2 and 5–7 is inferred: App. B names Table 4 SugarCrepe; the
SigLIP tables 5, 6, 7 repeat the baseline rows of Tables 4, 1, 2; Table 1's figures fit
Synthetic Shapes' construction (CLIP R@1 3.5% over 13k compositions) and Table 2's
Urban1K. Each table says whether its dataset is ``inferred``. "—" cells are ``None``.

Values are fractions in [0, 1] (the paper prints R@K in % in Tables 1, 2, 4–7).
"""

from __future__ import annotations

__all__ = ["PAPER_TABLES", "PAPER_STATISTICS", "APP_J_FIGURES", "PAPER_SETTINGS", "STAGE1_NAMES", "STAGE2_NAMES", "paper_table", "statistics_table"]

_COLS = ("t2i_R@1", "t2i_R@5", "t2i_R@10", "t2i_nDCG@1", "t2i_nDCG@5", "t2i_nDCG@10")
#: the paper's row labels -> vgrc's stage names
STAGE1_NAMES = {"CLIP": "cosine", "SigLIP": "cosine", "Ridge": "ridge", "Ridge+steer": "ridge+steer", "Multi-object steering (average)": "objects-steer-avg"}
STAGE2_NAMES = {"None": "none", "Local Hungarian": "hungarian", "Local FGW": "fgw"}


def _rows(model: str, text: str) -> list[dict]:
    """``"CLIP | None | 3.5 | 13.4 | …"`` lines -> rows with R@K as fractions."""
    rows = []
    for line in text.strip().splitlines():
        s1, s2, *cells = [c.strip() for c in line.split("|")]
        values = {}
        for i, (col, cell) in enumerate(zip(_COLS, cells)):
            if cell != "—":
                values[col] = float(cell) / 100 if i < 3 else float(cell)
        rows.append({"stage1": STAGE1_NAMES[s1], "rerank": STAGE2_NAMES[s2], "model": model, "values": values})
    return rows


_T1 = """CLIP | None | 3.5 | 13.4 | 21.3 | 0.4 | 0.6 | 0.7
CLIP | Local Hungarian | 16.4 | — | — | 0.2 | — | —
CLIP | Local FGW | 5.1 | 14.9 | 22.5 | 0.5 | 0.6 | 0.8
Ridge | None | 72.3 | 91.5 | 94.6 | 0.9 | 0.8 | 0.9
Ridge | Local Hungarian | 97.6 | — | — | 1.0 | — | —
Ridge | Local FGW | 81.3 | 94.1 | 95.7 | 0.4 | 0.7 | 0.7
Ridge+steer | None | 72.8 | 100.0 | 100.0 | 0.7 | 0.8 | 0.8
Ridge+steer | Local Hungarian | 97.6 | — | — | 1.0 | — | —
Ridge+steer | Local FGW | 100.0 | 100.0 | 100.0 | 0.6 | 0.7 | 0.9"""
_T2 = """CLIP | None | 42.8 | 67.3 | 75.9 | 0.7 | 0.7 | 0.8
CLIP | Local Hungarian | 78.4 | 83.3 | 86.1 | 0.8 | — | —
CLIP | Local FGW | 56.3 | 72.7 | 79.3 | 0.5 | 0.6 | 0.8
Ridge | None | 74.3 | 84.4 | 87.2 | 0.8 | 0.8 | 0.9
Ridge | Local Hungarian | 91.1 | — | — | — | — | —
Ridge | Local FGW | 83.6 | 88.0 | 89.5 | 0.4 | 0.6 | 0.8"""
_T4 = """CLIP | None | 8.7 | 34.9 | 55.5 | 0.6 | 0.7 | 0.8
CLIP | Local Hungarian | 43.9 | — | — | 0.5 | — | —
CLIP | Local FGW | 8.7 | 34.9 | 55.7 | 0.5 | 0.6 | 0.7
Ridge | None | 9.2 | 39.9 | 62.8 | 0.6 | 0.7 | 0.8
Ridge | Local Hungarian | 52.5 | — | — | 0.5 | — | —
Ridge | Local FGW | 11.5 | 42.2 | 64.7 | 0.4 | 0.5 | 0.7
Ridge+steer | None | 9.28 | 39.9 | 62.8 | 0.6 | 0.7 | 0.8
Ridge+steer | Local Hungarian | 55.0 | — | — | 0.5 | — | —
Ridge+steer | Local FGW | 19.2 | 78.3 | 100.0 | 0.4 | 0.5 | 0.7"""
_T5 = """SigLIP | None | 8.7 | 34.9 | 55.5 | 0.7 | 0.8 | 0.9
SigLIP | Local Hungarian | 43.9 | — | — | 0.4 | — | —
SigLIP | Local FGW | 7.5 | 34.2 | 55.7 | 0.6 | 0.7 | 0.8
Ridge | None | 0.7 | 39.9 | 62.8 | 0.7 | 0.8 | 0.8
Ridge | Local Hungarian | 52.5 | — | — | 0.5 | — | —
Ridge | Local FGW | 9.7 | 41.9 | 64.9 | 0.6 | 0.7 | 0.8"""
_T6 = """SigLIP | None | 3.5 | 13.4 | 21.3 | 0.4 | 0.6 | 0.7
SigLIP | Local Hungarian | 16.4 | — | — | 0.2 | — | —
SigLIP | Local FGW | 4.5 | 16.1 | 23.9 | 0.5 | 0.6 | 0.8
Ridge | None | 72.3 | 91.5 | 94.6 | 0.9 | 0.8 | 0.9
Ridge | Local Hungarian | 97.6 | — | — | 1.0 | — | —
Ridge | Local FGW | 18.3 | 84.0 | 93.4 | 0.5 | 0.7 | 0.8"""
_T7 = """SigLIP | None | 42.8 | 67.3 | 75.9 | 0.7 | 0.7 | 0.8
SigLIP | Local Hungarian | 76.5 | — | — | 0.8 | — | —
SigLIP | Local FGW | 18.4 | 72.3 | 79.8 | 0.4 | 0.6 | 0.8
Ridge | None | 74.3 | 84.4 | 87.2 | 0.8 | 0.8 | 0.9
Ridge | Local Hungarian | 91.1 | — | — | 0.9 | — | —
Ridge | Local FGW | 25.3 | 81.9 | 87.6 | 0.5 | 0.7 | 0.8"""


def _table3(dataset: str, figures: dict[str, tuple]) -> list[dict]:
    """Table 3's columns (Baseline CLIP, Multi-object steering (average), FGW, Hungarian) as rows."""
    methods = (("cosine", "none"), ("objects-steer-avg", "none"), ("cosine", "fgw"), ("cosine", "hungarian"))
    rows = []
    for i, (stage1, rerank) in enumerate(methods):
        values = {metric: vals[i] for metric, vals in figures.items() if vals[i] is not None}
        rows.append({"stage1": stage1, "rerank": rerank, "model": "clip", "values": values, "dataset": dataset})
    return rows


_T3_CLEVR = {
    "t2i_R@1": (0.050, 0.010, 0.682, 0.683), "t2i_R@5": (0.141, 0.051, 0.682, None), "t2i_R@10": (0.230, 0.094, 0.682, None),
    "t2i_nDCG@1": (0.054, 0.012, 0.683, 0.695), "t2i_nDCG@5": (0.103, 0.039, 0.665, None), "t2i_nDCG@10": (0.146, 0.063, 0.682, None),
    "t2i_CAS-gen@10": (0.855, 0.785, 0.923, None), "t2i_CAS-noun@10": (0.118, 0.078, 0.264, None),
}
_T3_VG = {
    "t2i_R@1": (0.091, 0.068, 0.249, 0.725), "t2i_R@5": (0.199, 0.148, 0.399, None), "t2i_R@10": (0.259, 0.208, 0.462, None),
    "t2i_nDCG@1": (0.095, 0.073, 0.249, 0.733), "t2i_nDCG@5": (0.155, 0.118, 0.327, None), "t2i_nDCG@10": (0.178, 0.141, 0.351, None),
    "t2i_CAS-gen@10": (0.398, 0.389, 0.361, None), "t2i_CAS-noun@10": (0.057, 0.049, 0.078, None),
}

#: table number -> {"title", "datasets", "inferred", "rows"}; each row: stage1, rerank, model, values (and dataset for Table 3)
PAPER_TABLES: dict[int, dict] = {
    1: {"title": "Table 1 (§6.1): Synthetic Shapes, CLIP", "datasets": ("shapes",), "inferred": True, "rows": _rows("clip", _T1)},
    2: {"title": "Table 2 (§6.1): Urban1K, CLIP", "datasets": ("urban1k",), "inferred": True, "rows": _rows("clip", _T2)},
    3: {"title": "Table 3 (§6.2): compositional retrieval, CLIP", "datasets": ("clevr-hope", "vg"), "inferred": False,
        "rows": _table3("clevr-hope", _T3_CLEVR) + _table3("vg", _T3_VG), "units": "fraction3"},
    4: {"title": "Table 4 (App. B): SugarCrepe, CLIP", "datasets": ("sugarcrepe",), "inferred": False, "rows": _rows("clip", _T4)},
    5: {"title": "Table 5 (App. C): SugarCrepe, SigLIP", "datasets": ("sugarcrepe",), "inferred": True, "rows": _rows("siglip", _T5)},
    6: {"title": "Table 6 (App. C): Synthetic Shapes, SigLIP", "datasets": ("shapes",), "inferred": True, "rows": _rows("siglip", _T6)},
    7: {"title": "Table 7 (App. C): Urban1K, SigLIP", "datasets": ("urban1k",), "inferred": True, "rows": _rows("siglip", _T7)},
}


#: What the paper states, or what vgrc reads from it, about the settings behind each
#: dataset's rows (docs/FIDELITY.md rows 14-16, 58). A run whose settings differ is still
#: shown beside the row, with each difference named. Set sizes: Table 8 (App. F) where it
#: matches the evaluated set (its Synthetic Shapes "2,430" is not the 13,244 compositions,
#: so no size is set for Shapes; SugarCrepe's 7,512 counts its records, not its images).
PAPER_SETTINGS: dict[str, dict] = {
    "shapes": {"relevance": "symbolic"},  # App. H: parsed tuples, scaled to 0-4
    "clevr-hope": {"relevance": "symbolic", "n_gallery": 1000},  # scene-graph queries; §3: a subset of 1,000 images
    "vg": {"relevance": "vlm", "judge_mode": "json"},
    "urban1k": {"relevance": "vlm", "judge_mode": "json", "n_gallery": 1000},
    "sugarcrepe": {"relevance": "vlm", "judge_mode": "json"},
}
#: FGW rows: the paper's linear step is entropic (Sinkhorn); vgrc's default is exact CG
PAPER_FGW_SOLVER = "sinkhorn"


#: Tables 8-10 (App. F): dataset statistics, transcribed digit for digit; no run is compared
PAPER_STATISTICS: dict[int, dict] = {
    8: {"title": "Table 8 (App. F): the datasets", "head": ["Dataset", "#Samples", "Domain", "Setting"], "rows": [
        ["Synthetic Shapes", "2,430", "Synthetic", "Compositional retrieval"],
        ["Urban1K", "1,000", "Real-world", "Long-caption retrieval"],
        ["Visual Genome", "108,077", "Real-world", "Dense grounding"],
        ["SugarCrepe", "7,512", "Real-world", "Compositional retrieval"],
        ["NAC", "2,430", "Real-world (controlled)", "Attribute binding"],
        ["CLEVR-HOPE", "1,000", "Synthetic", "Compositional retrieval"]],
        "note": "Synthetic Shapes' 2,430 is not the 13,244 compositions §3 describes (C(44, 3)); vgrc builds the 13,244 "
                "and records no paper size for Shapes (docs/FIDELITY.md)."},
    9: {"title": "Table 9 (App. F.1): Visual Genome contrastive triples by type", "head": ["Type", "Count (both dirs)", "%"], "rows": [
        ["color", "89,658", "87.6"], ["size", "4,500", "4.4"], ["pose", "1,788", "1.7"], ["state", "1,662", "1.6"],
        ["shape", "668", "0.7"], ["human", "216", "0.2"], ["texture", "72", "0.1"], ["TOTAL", "102,318", "–"]],
        "note": "compare with a build's stats.md (vgrc build-vg): the same counts by category"},
    10: {"title": "Table 10 (App. F.1): NAC, nouns retained per attribute contrast (min count)", "head": ["Attribute contrast", "Nouns retained (min count)"], "rows": [
        ["cluttered / tidy", "garage (41), basement (15), kitchen (13)"], ["foggy / clear", "lake (19)"],
        ["folded / unfolded", "shirt (23)"], ["frozen / thawed", "lake (13)"],
        ["open / closed", "bucket (54), pot (41), bottle (27), bag (22), gate (20), road (20), street (20), door (19), garage (18), "
                          "shower (16), window (15), town (14), box (12), book (11), library (10)"],
        ["peeled / unpeeled", "banana (17)"], ["shattered / intact", "glass (15), bowl (10)"], ["sunny / overcast", "lake (18)"],
        ["toppled / upright", "bottle (16), bucket (16), house (10)"]],
        "note": "compare with a build's stats.md (vgrc build-nac)"},
}

#: App. J's figures given in prose (CLEVR-HOPE, CLIP): (what, value, the paper's sentence)
APP_J_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("cosine R@10", "0.230", "Plain cosine-similarity retrieval ... yields a weak baseline of retrieval@10 = 0.230."),
    ("pairing errors in the top 10", "10%", "Among the retrieved top-10 results, 10% are pairing errors"),
    ("complete misses", "9,644 / 10,000", "out of 10,000 retrieved images across the evaluation set, 9,644 do not match the target scene structure"),
    ("colour's share of pairing errors", "42.2%", "color is the most frequently mispaired attribute (42.2%)"),
    ("steerable mispaired slots", "314", "On all 314 steerable cases (color, material, and size), targeted steering achieves a 100% correction rate."),
    ("R@10 after targeted steering", "0.144", "query-level retrieval@10 drops to 0.144"),
    ("shape errors", "94 / 408", "Shape errors (94/408 mispaired slots) are not steerable in this formulation"),
    ("multi-object steering (average) R@10", "0.046–0.094", "With average merging, retrieval@10 ranges from 0.046 to 0.094"),
    ("candidate recall@100", "0.669", "CLIP first retrieves a candidate pool of 100 images, achieving candidate recall@100 = 0.669."),
    ("steer-min / steer-softmin R@10", "0.089 / 0.092", "retrieval@10 drops to 0.089 with min and 0.092 with softmin"),
    ("FGW R@10", "0.521", "This yields retrieval@10 = 0.521, more than doubling the CLIP baseline"),
    ("candidate recall@50", "0.522", "Candidate recall@50 is 0.522, nearly identical to final FGW retrieval@10"),
    ("queries degraded on ≥ 1 attribute", "998 / 1,000", "998/1000 queries suffer degradation on at least one attribute"),
    ("other slots degraded per improving query", "10.93", "an average of 10.93 other attribute slots degrade simultaneously"),
    ("shape / material degrade when colour improves", "81% / 80%", "when color improves, shape degrades in 81% of such cases and material degrades in 80%"),
)
#: where the paper disagrees with itself (shown with Table 3)
APP_J_VS_TABLE_3 = ("App. J gives FGW R@10 = 0.521 (candidate recall@50 0.522) on CLEVR-HOPE; Table 3 gives FGW R@10 = 0.682 on the "
                    "same dataset and model. The paper does not say which setting differs; vgrc compares runs with Table 3.")


def paper_table(number: int) -> dict:
    from vgrc.evaluators.errors import InvalidInputError

    if number not in PAPER_TABLES and number not in PAPER_STATISTICS:
        raise InvalidInputError(f"--paper {number}: the paper has Tables {', '.join(map(str, [*PAPER_TABLES, *PAPER_STATISTICS]))}")
    return PAPER_TABLES.get(number) or PAPER_STATISTICS[number]


def statistics_table(number: int) -> tuple[str, str]:
    """(markdown, csv) of one of Tables 8-10, as the paper prints it."""
    table = PAPER_STATISTICS[number]
    md = [f"{table['title']} (the paper's figures; no run is compared)", "",
          "| " + " | ".join(table["head"]) + " |", "|" + "---|" * len(table["head"])]
    md += ["| " + " | ".join(row) + " |" for row in table["rows"]]
    md += ["", f"- {table['note']}"]
    csv = [",".join(table["head"])] + [",".join(f'"{c}"' if "," in c else c for c in row) for row in table["rows"]]
    return "\n".join(md), "\n".join(csv)
