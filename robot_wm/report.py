"""Human-readable tables for the terminal."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from robot_wm.text import printable
from robot_wm.whatif import WhatIfResult


def _num(v, fmt: str = ".1f") -> str:
    """A figure for the table; 'n/a' where it could not be measured (None or NaN)."""
    return "n/a" if v is None or v != v else format(v, fmt)


MIN_WIDTH = 80
"""Columns a table is laid out in at least: COLUMNS=3 printed the tables as empty boxes, no numbers (probe 11)."""


def _console() -> Console:
    width = Console().width
    return Console(width=max(width, MIN_WIDTH))


def shown(text) -> str:
    """A file's text as a rich table cell: markup escaped, control characters shown (``printable``): a
    results.csv cell holding ESC sequences drove the terminal through ``report`` (tenth probe)."""
    from rich.markup import escape

    return escape(printable(str(text)))


def print_summary(summary: dict, run_dir: Path) -> None:
    t = Table(title=f"robot-wm run: {summary['task']} (seed {summary['seed']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("eval return", f"{_num(summary['eval_return_mean'])} ± {_num(summary['eval_return_std'])}")
    t.add_row("eval return per episode", ", ".join(f"{r:.0f}" for r in summary["eval_returns"]))
    t.add_row("train return per episode", ", ".join(f"{r:.0f}" for r in summary["train_returns"]))
    t.add_row("env steps (training data)", str(summary["env_steps"]))
    if summary.get("robot_episodes"):
        t.add_row("robot episodes trained on too", f"{summary['robot_episodes']} (weight {summary.get('robot_weight')})")
    for k, v in sorted(summary["multistep_mse"].items(), key=lambda kv: int(kv[0])):
        t.add_row(f"model error, {k}-step (norm. MSE)", _num(v, ".4f"))
    t.add_row("planning rate", f"{_num(summary['plan_hz'])} Hz")
    t.add_row("wall clock", f"{summary['wall_s']:.0f} s")
    t.add_row("run directory", Text(printable(str(run_dir))))  # not markup ("[red]"), no escape sequences
    _console().print(t)


def print_whatif(names: list[str], res: WhatIfResult, actual: float, episode: int, step: int, h: int,
                 realigned: int = 0) -> None:
    """The ranked table; ``realigned``: the episode's rows were realigned by that delay (row K = recorded step K + D)."""
    moved = f" (realigned by {realigned}: recorded step {step + realigned})" if realigned else ""
    t = Table(title=f"what if? episode {episode}, step {step}{moved}, {h} steps ahead (recorded return {actual:.2f})")
    goal = bool(res.goal_cost.any())
    for col in ("rank", "candidate", "score", "imagined reward", "terminal value", *(["goal cost"] if goal else []),
                "spread (std)", "mean disagreement"):
        t.add_column(col, justify="right")
    for rank, i in enumerate(res.ranking()):
        t.add_row(str(rank + 1), names[i], f"{res.returns[i]:.2f}", f"{res.reward_return[i]:.2f}",
                  f"{res.terminal_value[i]:.2f}", *([f"{res.goal_cost[i]:.3f}"] if goal else []),
                  f"{res.return_spread[i]:.2f}", f"{res.disagreement[i].mean():.4f}")
    _console().print(t)
