"""Same numbers after a restructuring (issue 23): the golden matrix of eval runs, the
report and every analysis, compared with the outputs recorded before it.

``tests/golden/record.py --check`` compares byte for byte; this test allows a relative
1e-6 on floats, so a machine whose BLAS rounds differently still passes while any real
change (a rank, a count, a metric's definition) fails. Records again only on purpose:
``tests/golden/record.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "golden"))

from golden_fixtures import build_sugar_fixture, build_vg_fixture  # noqa: E402
from matrix import collect, differences, load_expected  # noqa: E402


def test_golden_matrix_is_unchanged(shapes_dir, tiny_qwen, tmp_path):
    got = collect(tmp_path / "w", shapes_dir, build_sugar_fixture(tmp_path / "sugar"), build_vg_fixture(tmp_path / "vg"), tiny_qwen)
    expected = load_expected()
    assert len(expected["eval"]) >= 20 and set(expected["diagnose"]) == {"substitution", "geometry", "composition", "k-sweep", "alpha-sweep", "alpha-sweep-vg", "fgw-alpha"}
    diff = differences(expected, got, rel=1e-6)
    assert not diff, "\n".join(diff[:30])
