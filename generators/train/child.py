"""The training process: open_clip's own trainer (``open_clip_train.main``) with vgrc's
shipped model configs registered (``shapes-tiny`` …), run as a child of ``vgrc train``
so that its logging, threads and data-loader workers end with it.

    python -m vgrc.generators.train.child ARGS…   # open_clip_train.main's own arguments
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    import open_clip
    from open_clip_train.main import main as train_main

    from vgrc.evaluators.encoders.model_refs import TINY_CONFIG_DIR

    open_clip.add_model_config(TINY_CONFIG_DIR)
    return int(train_main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
