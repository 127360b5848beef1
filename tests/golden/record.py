"""Record the golden outputs (``expected.json.gz``) or, with ``--check``, compare today's
outputs with them exactly (no tolerance) and list every difference.

    .venv/bin/python tests/golden/record.py            # before a change that must not move a number
    .venv/bin/python tests/golden/record.py --check    # after it
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

from golden_fixtures import build_fixtures  # noqa: E402
from matrix import collect, differences, load_expected, save_expected  # noqa: E402


def main() -> int:
    check = "--check" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="vgrc-golden-") as tmp:
        work = Path(tmp)
        got = collect(work / "w", *build_fixtures(work / "fixtures"))
    if not check:
        save_expected(got)
        print(f"recorded {len(got['eval'])} eval runs, the report and {len(got['diagnose'])} analyses")
        return 0
    diff = differences(load_expected(), got)
    for line in diff[:50]:
        print(line)
    print(f"RESULT golden_differences={len(diff)}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
