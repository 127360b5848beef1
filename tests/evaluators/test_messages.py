"""Issue 21 §4: messages, tables and plots a reader trips on, each against what it must say."""

import json

import numpy as np
import pandas as pd
import pytest

from vgrc.evaluators.errors import DatasetFolderError


def _run(folder, config, metrics, categories=None):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({**metrics, "config": config, "notes": []}))
    if categories is not None:
        pd.DataFrame({"query_id": [f"q{i}" for i in range(len(categories))], "rank_final": [0] * len(categories),
                      "categories": categories}).to_parquet(folder / "per_query.parquet")
    return folder


def test_an_itm_run_gets_its_accuracies_in_a_table_of_its_own(tmp_path):
    from vgrc.evaluators.report import report_table

    ret = _run(tmp_path / "ret", {"data": "/d/sc", "dataset": "sugarcrepe", "model": "m", "task": "retrieval", "stage1": "cosine", "rerank": "none", "k": 50},
               {"t2i_R@1": 0.25})
    itm = _run(tmp_path / "itm", {"data": "/d/sc", "dataset": "sugarcrepe", "model": "m", "task": "itm", "stage1": "cosine", "rerank": "hungarian", "k": 50},
               {"itm_acc_add": 0.5, "itm_acc_replace": 0.75, "itm_acc_swap": 0.625, "itm_acc_macro": 0.6, "stage1_itm_acc_macro": 0.55})
    md, csv, _ = report_table([ret, itm])
    main, itm_part = md.split("## Image–text matching")
    assert "| itm |" not in main and "steering" not in md  # not a retrieval row, not mislabelled
    assert "| itm | sugarcrepe | m | hungarian | 50.0 | 75.0 | 62.5 | 60.0 | 55.0 |" in itm_part
    header, *rows = csv.splitlines()
    assert header.endswith("itm_acc_macro,stage1_itm_acc_macro") and rows[1].endswith(",0.6,0.55")


def test_category_queries_count_what_the_runs_hold(tmp_path):
    """The first run lacks category 'star', the second has it twice: 'Queries' is 2, not 0."""
    from vgrc.evaluators.report_stats import category_table

    a = _run(tmp_path / "a", {"task": "retrieval"}, {}, categories=[["circle"], ["circle"]])
    b = _run(tmp_path / "b", {"task": "retrieval"}, {}, categories=[["star"], ["star"], ["circle"]])
    lines = category_table([(a, {}), (b, {})])
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ") and "Category" not in line}
    assert rows["star"].split(" | ")[1] == "2" and "(n=2)" in rows["star"] and "| — |" in rows["star"]
    assert rows["circle"].split(" | ")[1] == "2"


def test_sentences_are_not_categories_when_the_dataset_says_so():
    from vgrc.evaluators.retrieval_data import RetrievalSet, query_categories

    rows = RetrievalSet(ids=["a", "b"], captions=["x", "y"], image_paths=[None, None], objects=[[], []],
                        query_objects=[[{"noun": "A busy street at dusk"}], [{"noun": "dog"}]], relevant=np.zeros((2, 1), int))
    assert query_categories(rows) == [["A busy street at dusk"], ["dog"]]
    assert query_categories(rows, from_nouns=False) == [[], []]


def test_markdown_tables_write_a_dash_for_nan():
    from vgrc.evaluators.diagnostics._common import markdown_table

    table = markdown_table(["k", "recovery"], [[5, float("nan")], [10, np.float64(0.25)]])
    assert "nan" not in table and "| 5 | — |" in table and "| 10 | 0.250 |" in table


@pytest.mark.parametrize("builder, option", [("vg", "a lower --min-images (vgrc build-vg)"), ("nac", "a lower --min-samples or --min-confidence")])
def test_an_empty_steering_file_names_its_builders_option(tmp_path, builder, option):
    from vgrc.evaluators.dataset import finish_dataset, write_jsonl
    from vgrc.evaluators.tasks.steering import load_steering_rows

    data = tmp_path / builder
    (data / "images").mkdir(parents=True)
    write_jsonl(data / "images" / "metadata.jsonl", [{"id": "1", "file_name": "x.png", "caption": "c", "objects": []}])
    (data / "steering.jsonl").write_text("")
    hint = {"vg": "a lower --min-images (vgrc build-vg)",
            "nac": "a lower --min-samples or --min-confidence (vgrc build-nac re-merges from the kept images, no regeneration)"}[builder]
    finish_dataset(data, builder, {}, version="0", command="t", seed=0, splits=["images"], files=["images/metadata.jsonl", "steering.jsonl"],
                   extra={"steering": "steering.jsonl", "steering_thresholds": hint})
    with pytest.raises(DatasetFolderError, match="rebuild it with " + option.replace("(", r"\(").replace(")", r"\)")):
        load_steering_rows(data)


def test_a_plain_image_folder_points_at_import_captions(tmp_path):
    from vgrc.evaluators.dataset import read_manifest

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetFolderError, match="vgrc import captions --images DIR"):
        read_manifest(tmp_path / "photos")
