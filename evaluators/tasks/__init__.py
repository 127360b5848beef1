"""Evaluation tasks of ``vgrc eval --task``: one module each, registered here by name.

Each task is ``run(config, out, progress, timer) -> metrics`` and writes its run folder
through :mod:`vgrc.evaluators.runs`, the one writer of run outputs.
"""

from __future__ import annotations

__all__ = ["TASK_RUNNERS", "get_task_runner"]

#: name -> "module:function" (imported lazily); names and help live in vgrc.evaluators.registry.TASKS
TASK_RUNNERS: dict[str, str] = {
    "retrieval": "vgrc.evaluators.tasks.retrieval:run_retrieval",
    "steering": "vgrc.evaluators.tasks.steering:run_steering_eval",
    "itm": "vgrc.evaluators.tasks.itm:run_itm_eval",
}


def get_task_runner(name: str):
    from vgrc.evaluators.registry import load_entry

    return load_entry("--task", name, TASK_RUNNERS)
