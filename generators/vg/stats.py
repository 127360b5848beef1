"""What build-vg reports about its dataset: per-contrast statistics (``stats.csv`` /
``stats.md``) and the dataset card (``README.md``)."""

from __future__ import annotations

from vgrc.data_cards import render_card
from vgrc.evaluators import __version__

__all__ = ["contrast_stats", "stats_csv", "stats_md", "card", "id_key"]


def id_key(image_id: str):
    return (0, int(image_id), "") if image_id.isdigit() else (1, 0, image_id)


def contrast_stats(pairs, nouns_by_pair, steering) -> list[dict]:
    cats = list(dict.fromkeys(p.category for p in pairs))
    total_instances = sum(len(r["positives"]) for r in steering) or 1
    out = []
    for c in cats:
        rows = [r for r in steering if r["category"] == c]
        inst = sum(len(r["positives"]) for r in rows)
        out.append(
            {
                "category": c,
                "pairs": sum(p.category == c for p in pairs),
                "pairs_grounded": sum(pairs[k].category == c for k in nouns_by_pair),
                "noun_pairs": len(rows) // 2,
                "steering_rows": len(rows),
                "count_both_dirs": inst,
                "percent": round(100 * inst / total_instances, 1),
            }
        )
    out.sort(key=lambda r: -r["count_both_dirs"])
    return out


def stats_csv(stats) -> str:
    cols = ["category", "pairs", "pairs_grounded", "noun_pairs", "steering_rows", "count_both_dirs", "percent"]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in stats]
    total = {c: sum(r[c] for r in stats) for c in cols[1:-1]}
    lines.append(",".join(["TOTAL", *(str(total[c]) for c in cols[1:-1]), ""]))
    return "\n".join(lines) + "\n"


def _stats_table(stats) -> str:
    lines = ["| Type | Pairs (grounded / defined) | Noun–pairs | Count (both dirs) | % |", "|---|---|---|---|---|"]
    for r in stats:
        lines.append(f"| {r['category']} | {r['pairs_grounded']} / {r['pairs']} | {r['noun_pairs']:,} | {r['count_both_dirs']:,} | {r['percent']} |")
    lines.append(f"| TOTAL | {sum(r['pairs_grounded'] for r in stats)} / {sum(r['pairs'] for r in stats)} | {sum(r['noun_pairs'] for r in stats):,} | {sum(r['count_both_dirs'] for r in stats):,} | – |")
    return "\n".join(lines)


def stats_md(stats, corpus, repairs, n_pairs, n_grounded) -> str:
    rep = "\n".join(f"| {k} | {v:,} |" for k, v in sorted(repairs.items())) or "| (none) | 0 |"
    missing = corpus["images_missing_on_disk"]
    return (
        "# Visual Genome contrast statistics\n\n"
        f"{n_grounded} of {n_pairs} contrastive pairs have at least one qualifying noun.\n\n"
        f"{_stats_table(stats)}\n\n"
        "Count (both dirs): the images on the target side, summed over the steering rows of\n"
        "both directions (that is, image–noun incidences on either pole of a grounded pair).\n\n"
        "## Corpus\n\n"
        f"- images: {corpus['images']:,}; objects: {corpus['objects']:,}\n"
        f"- attribute mentions: {corpus['attribute_mentions']:,}; unique attribute strings: {corpus['unique_attribute_strings']:,}\n"
        f"- images missing on disk: {'not checked (pass --check-images)' if missing is None else f'{missing:,}'}\n\n"
        "## Records dropped or repaired\n\n| what | count |\n|---|---|\n" + rep + "\n"
    )


def card(record, corpus, stats, n_pairs, n_grounded, command) -> str:
    return render_card(
        "vg",
        vgrc_version=__version__,
        command=command,
        images=f"{corpus['images']:,}",
        objects=f"{corpus['objects']:,}",
        mentions=f"{corpus['attribute_mentions']:,}",
        unique_attributes=f"{corpus['unique_attribute_strings']:,}",
        pairs=n_pairs,
        grounded=n_grounded,
        min_images=record["min_images"],
        contrasts=record["contrasts"],
        query_template=record["query_template"],
        stats_table=_stats_table(stats),
        size_category="100K<n<1M" if corpus["images"] >= 100_000 else ("10K<n<100K" if corpus["images"] >= 10_000 else "n<10K"),
    )
