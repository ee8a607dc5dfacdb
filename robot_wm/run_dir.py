"""The run directory: resolved config, episodes, checkpoints, metrics and summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from robot_wm import config as config_mod
from robot_wm.config import RunConfig
from robot_wm.data.dataset import EpisodeDataset
from robot_wm.io import append_jsonl, atomic_write_json, atomic_write_text, leftover_temp_files, read_jsonl
from sim.env import STEP_UNIT

EPISODE_COLUMNS = ("phase", "index", "policy", "seed", "return", "control_steps", "env_steps",
                   "total_env_steps", "physics_steps", "diverged", "plan_hz", "wall_s")


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._datasets: dict[str, EpisodeDataset] = {}

    config_path = property(lambda self: self.root / "config.toml")
    metrics_path = property(lambda self: self.root / "metrics.jsonl")
    checkpoints = property(lambda self: self.root / "checkpoints")
    summary_path = property(lambda self: self.root / "summary.json")

    def remove_temp_files(self) -> list[Path]:
        """Delete the temp files of writes that never finished (a killed writer leaves one behind).
        Only for a run nobody is writing to."""
        stale = leftover_temp_files(self.root)
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def check_step_unit(self) -> None:
        """Refuse a run directory whose episodes count steps in another unit than ``STEP_UNIT``: robot-wm
        before 0.2 counted physics steps, so its budgets, milestones and learning curves would mix units."""
        for data in (self.dataset(), self.eval_dataset()):
            old = [p.name for p, ep in zip(data.paths(), data) if ep.meta.get("step_unit") != STEP_UNIT]
            if old:
                raise ValueError(
                    f"run directory {str(self.root)!r} was written by an older robot-wm that counted physics "
                    f"steps, not environment steps ({len(old)} episode(s) in {data.root.name}/ without "
                    f"step_unit={STEP_UNIT!r}, first {old[0]}); continuing it would mix the two units. Start a "
                    "new run; its checkpoints can still be exported and its episodes read with numpy")

    def dataset(self) -> EpisodeDataset:
        return self._dataset("episodes")

    def eval_dataset(self) -> EpisodeDataset:
        return self._dataset("eval")

    def _dataset(self, name: str) -> EpisodeDataset:
        """One dataset object per folder, refreshed on each call: only new episode files are read."""
        if name not in self._datasets:
            self._datasets[name] = EpisodeDataset(self.root / name)
        else:
            self._datasets[name].refresh()
        return self._datasets[name]

    def load_config(self) -> RunConfig:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{str(self.root)!r} is not a run directory (no config.toml)")
        return config_mod.load(self.config_path)

    def save_config(self, cfg: RunConfig) -> None:
        config_mod.save(cfg, self.config_path)

    def log(self, record: dict) -> None:
        append_jsonl(self.metrics_path, record)
        if record.get("kind") == "episode":
            self._write_episodes_csv()

    def records(self, kind: str | None = None) -> list[dict]:
        return [r for r in read_jsonl(self.metrics_path) if kind is None or r.get("kind") == kind]

    def _write_episodes_csv(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=EPISODE_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in self.records("episode"):
            w.writerow(r)
        atomic_write_text(self.root / "episodes.csv", buf.getvalue())

    def checkpoint_stem(self, round_: int) -> Path:
        return self.checkpoints / f"model_r{round_:04d}"

    def latest_checkpoint(self) -> Path | None:
        pointer = self.checkpoints / "latest.json"
        if not pointer.exists():
            return None
        return self.checkpoints / json.loads(pointer.read_text())["checkpoint"]

    def set_latest(self, cfg_json: Path) -> None:
        atomic_write_json(self.checkpoints / "latest.json", {"checkpoint": cfg_json.name})

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        """What is complete: ``status`` (running/complete), ``episodes``, ``final_eval_from``."""
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return {}

    def update_manifest(self, **fields) -> None:
        atomic_write_json(self.manifest_path, {**self.manifest(), **fields})

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.summary_path, summary)
