"""World-model checkpoints: ``NAME.safetensors`` (weights, normalisers) + ``NAME.json`` (config).
Loading never unpickles anything."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import robot_wm
from robot_wm.io import atomic_write_bytes, atomic_write_json
from robot_wm.model.ensemble import WorldModel, WorldModelSpec

FORMAT = "robot-wm/world-model/1"


def save_checkpoint(model: WorldModel, stem: Path, elites: list[int], extra: dict | None = None) -> Path:
    """Write weights first, then the JSON that names them (with their hash): the JSON is the
    commit point, so a crash mid-save never leaves a config pointing at partial weights."""
    stem = Path(stem)
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    weights = stem.with_suffix(".safetensors")
    atomic_write_bytes(weights, blob)
    meta = {
        "format": FORMAT,
        "robot_wm_version": robot_wm.__version__,
        "spec": model.spec.__dict__,
        "elites": [int(i) for i in elites],
        "weights": weights.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        **(extra or {}),
    }
    atomic_write_json(stem.with_suffix(".json"), meta)
    return stem.with_suffix(".json")


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[WorldModel, dict]:
    """Load ``NAME.json`` (or its ``.safetensors`` sibling). Raises ValueError naming the file on
    anything truncated, corrupted, mismatched or not ours."""
    path = Path(path)
    cfg_path = path.with_suffix(".json")
    try:
        meta = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"checkpoint config {str(cfg_path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"checkpoint config {str(cfg_path)!r} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{str(cfg_path)!r} is not a robot-wm world-model checkpoint (format {FORMAT!r} expected)")
    if not isinstance(meta.get("weights"), str) or not isinstance(meta.get("spec"), dict) or \
            not isinstance(meta.get("elites"), list):
        raise ValueError(f"checkpoint config {str(cfg_path)!r} lacks 'weights' (a file name), 'spec' (an object) "
                         "or 'elites' (a list)")
    weights = cfg_path.parent / Path(meta["weights"]).name
    try:
        blob = weights.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"checkpoint weights {str(weights)!r} do not exist") from None
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ValueError(f"checkpoint weights {str(weights)!r} do not match the hash in {cfg_path.name} "
                         "(truncated, corrupted or from another model)")
    try:
        state = st_load(blob)
        spec = WorldModelSpec(**meta["spec"])
        with torch.device("meta"):  # check every shape before allocating anything a hand-made spec asks for
            want = {k: tuple(v.shape) for k, v in WorldModel(spec, state["action_low"].to("meta"),
                                                             state["action_high"].to("meta")).state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if want != got:
            bad = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))[:3]
            raise RuntimeError(f"tensors {bad} have shapes {[got.get(k) for k in bad]}, the spec {meta['spec']} "
                               f"expects {[want.get(k) for k in bad]}")
        model = WorldModel(spec, state["action_low"], state["action_high"])
        model.load_state_dict(state)
    except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"checkpoint {str(cfg_path)!r} does not fit a robot-wm world model: {e}") from None
    members = spec.ensemble_size
    if not meta["elites"] or not all(isinstance(i, int) and 0 <= i < members for i in meta["elites"]):
        raise ValueError(f"checkpoint {str(cfg_path)!r}: elites {meta['elites']} are not member indices "
                         f"in [0, {members})")
    return model.to(device), meta


def checkpoint_hash(path: str | Path) -> str:
    return json.loads(Path(path).with_suffix(".json").read_text())["sha256"]
