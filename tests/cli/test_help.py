"""Every command's --help shows every option's full help text (bracketed text included:
"rich" markup used to swallow "[default: …]" and the valid names) and every default."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from vgrc.cli.main import app

COMMAND = typer.main.get_command(app)


def _leaf_commands(group, prefix=()):
    """Every command, nested groups included (vgrc import sugarcrepe, vgrc diagnose …)."""
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):
            yield from _leaf_commands(cmd, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), cmd


LEAVES = dict(_leaf_commands(COMMAND))


def _help(name: str) -> str:
    exe = Path(sys.executable).with_name("vgrc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "vgrc.cli.main"]
    env = {**os.environ, "TERMINAL_WIDTH": "400", "NO_COLOR": "1"}
    out = subprocess.run([*cmd, *name.split(), "--help"], capture_output=True, text=True, env=env, check=True).stdout
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_help_shows_every_option_and_default(name):
    shown = _help(name)
    for param in LEAVES[name].params:
        if getattr(param, "hidden", False) or param.name == "help":
            continue
        if param.help:
            assert _flat(param.help) in shown, f"{name} --{param.name}: help text lost: {param.help!r}"
        default = param.default
        if param.show_default is False or default is None or isinstance(default, bool) or param.required:
            continue
        assert f"[default: {default}]" in shown, f"{name} --{param.name}: default {default!r} not shown"


def test_eval_help_lists_the_registries():
    from vgrc.evaluators.registry import names

    shown = _help("eval")
    for name in (*names("stage1"), *names("reranker"), *names("solver"), *names("index"), "clip", "tiny-random"):
        assert name in shown
    assert "vgrc eval --model clip --rerank fgw" in shown  # the docstring's examples
    for panel in ("Data", "Model and encoding", "Pipeline", "Stage 1 options", "Reranker options", "Relevance options", "Output"):
        assert f"╭─ {panel} " in _raw_help("eval"), panel


def _raw_help(name: str) -> str:
    exe = Path(sys.executable).with_name("vgrc")
    env = {**os.environ, "TERMINAL_WIDTH": "400", "NO_COLOR": "1"}
    return subprocess.run([str(exe), *name.split(), "--help"], capture_output=True, text=True, env=env, check=True).stdout


def test_registries_agree_with_their_implementations():
    """Implementations that keep their own name tables (solvers, parsers, diagnose all)
    accept exactly the registry's names; NAC's judges are the registry's."""
    from vgrc.evaluators.diagnostics.run_all import ALL_ORDER
    from vgrc.evaluators.judges.verify import list_judges, make_judge
    from vgrc.evaluators.objects.parsers import OBJECT_PARSERS
    from vgrc.evaluators.registry import names
    from vgrc.evaluators.solvers import list_fgw_solvers

    assert list_fgw_solvers() == names("solver")
    assert list_judges() == names("judge") == ["qwen2.5-vl", "none"] and make_judge("none", "any") is None
    assert list(OBJECT_PARSERS) == names("object_parser")
    assert sorted(ALL_ORDER) == sorted(n for n in names("diagnostic") if n != "all")
