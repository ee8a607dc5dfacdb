"""Model checkpoints: ``NAME.safetensors`` (weights, normalisers) + ``NAME.json`` (config).
Loading never unpickles anything.

Format 2 holds the world model (its tensors unprefixed, as in format 1) and, when the run learns one,
the value and policy (``value.``-prefixed tensors, ``value_spec`` in the JSON). Format 3 is format 2 with
the JSON's own hash (``config_sha256``, over every other key): the weights' ``sha256`` never covered the
JSON, so one changed byte in a spec, ``value_scale`` or the elites loaded silently. Format 1 files (world
model only) and format 2 files still load (without that check)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import reprlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import robot_wm
from robot_wm.io import atomic_write_bytes, atomic_write_json, check_regular_file, finite_json, loads_json
from robot_wm.model.ensemble import WorldModel, WorldModelSpec
from robot_wm.model.value import ActorCritic, ValueSpec

FORMAT = "robot-wm/world-model/3"
FORMATS = ("robot-wm/world-model/1", "robot-wm/world-model/2", FORMAT)
CONFIG_HASH_KEY = "config_sha256"
MAX_CONFIG_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 8 << 30
"""A checkpoint larger than these is refused before it is read (a symlink to /dev/zero read until OOM)."""
VALUE_PREFIX = "value."


TIME_STEP_KEYS = ("action_repeat", "substeps")
"""The ``env`` fields that give a checkpoint's transitions their time step (written with it since session 17: a model
trained at action repeat 4 was exported and planned with at 8, its sizes being the same; probe 17)."""


def time_step(env) -> dict:
    """``TIME_STEP_KEYS`` of an ``EnvConfig``, for a checkpoint's JSON."""
    return {k: getattr(env, k) for k in TIME_STEP_KEYS}


def check_time_step(meta: dict, env, path) -> None:
    """Refuse a checkpoint of another task (in either spelling) or whose transitions span another time step than
    ``env`` (an ``EnvConfig``) says; one written before session 17 says no time step and is taken as it is."""
    from sim.dmc import task_key

    theirs = meta.get("task")
    if "task" not in meta and any(k in meta for k in TIME_STEP_KEYS):  # they came together: removed (probe 20)
        raise ValueError(f"{str(path)!r} says its time step but not its task (a checkpoint of this robot-wm always "
                         "says both): the checkpoint's JSON was edited or damaged")
    if "task" in meta and not isinstance(theirs, str):  # a number was skipped without a word (probe 19)
        raise ValueError(f"{str(path)!r} says task={theirs!r}: expected a task name (the checkpoint's JSON was edited "
                         "or damaged)")
    if isinstance(theirs, str) and task_key(theirs) != task_key(env.task):
        raise ValueError(f"{str(path)!r} is a model of task {theirs!r}, the run's is {env.task!r} (a checkpoint of "
                         "another run copied in?): put the run's own checkpoint back, or export that run")
    if bad := {k: (meta[k], getattr(env, k)) for k in TIME_STEP_KEYS if k in meta and meta[k] != getattr(env, k)}:
        said = ", ".join(f"env.{k}={ours!r} but the checkpoint was trained at {theirs!r}" for k, (theirs, ours) in bad.items())
        raise ValueError(f"{str(path)!r}: the run says {said}: its transitions span another time step (config.toml "
                         "edited by hand, or a checkpoint of another run copied in?). Put the run's own config.toml "
                         "and checkpoints back, or export the run the checkpoint came from")


def config_digest(meta: dict) -> str:
    """sha256 of a checkpoint JSON's content, every key but ``config_sha256`` (canonical: sorted keys)."""
    body = finite_json({k: v for k, v in meta.items() if k != CONFIG_HASH_KEY})  # as atomic_write_json stores it
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sealed(meta: dict) -> dict:
    """``meta`` with its ``config_sha256``."""
    return {**meta, CONFIG_HASH_KEY: config_digest(meta)}


MAX_WEIGHT = 1e6
"""The largest magnitude of a network weight or bias a checkpoint may hold (normalisers and bounds are not weights):
a trained network's are below 10; past this, training has diverged or the file was edited."""


def _huge_weights(tensors: dict) -> list[str]:
    """The weights and biases (``*.weight``, ``*.bias``) holding a magnitude above ``MAX_WEIGHT``."""
    return sorted(k for k, v in tensors.items() if k.endswith((".weight", ".bias")) and v.is_floating_point()
                  and v.numel() and float(v.abs().max()) > MAX_WEIGHT)


class TrainingDivergedError(ValueError):
    """A training round ended with non-finite weights or a validation error far past an untrained model's:
    nothing is saved, the run stops."""


def save_checkpoint(model: WorldModel, stem: Path, elites: list[int], extra: dict | None = None,
                    value: ActorCritic | None = None) -> Path:
    """Write weights first, then the JSON that names them (with their hash): the JSON is the
    commit point, so a crash mid-save never leaves a config pointing at partial weights."""
    stem = Path(stem)
    elites = [int(i) for i in elites]  # what the loader takes, checked before anything is written (review)
    if _elites_problem(sorted(elites), model.spec.ensemble_size):  # saved sorted
        raise ValueError(f"elites {reprlib.repr(elites)}: expected distinct member indices in [0, {model.spec.ensemble_size})")
    if value is not None and (problem := _value_scale_problem(value.spec, (extra or {}).get("action_repeat"))):
        raise ValueError(f"{problem}, as new_value builds it: a checkpoint of it would be refused at load")
    tensors = dict(model.state_dict())
    if value is not None:
        tensors.update({VALUE_PREFIX + k: v for k, v in value.state_dict().items()})
    bad = sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all())
    bad = bad or _huge_weights(tensors)
    if bad:  # a diverged training: such a checkpoint cannot plan (the run was reported complete with return 0)
        raise TrainingDivergedError(
            f"training diverged: non-finite weights (or beyond +-{MAX_WEIGHT:g}) in {bad[:5]}{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}"
            f"; {stem.name} was not written. Lower the learning rate (model.lr for the world model, value.lr "
            "for the value and policy) or the other training weights (model.weight_decay, value.entropy_coef), "
            "or check the data's scale (a reward or observe function of your own returning huge values)")
    # the format is in the weights' header too: a JSON relabelled to an older format loses its hash check with it
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata={"format": FORMAT})
    weights = stem.with_suffix(".safetensors")
    atomic_write_bytes(weights, blob)
    meta = {
        "format": FORMAT,
        "robot_wm_version": robot_wm.__version__,
        "spec": model.spec.__dict__,
        "value_spec": value.spec.__dict__ if value is not None else None,
        "elites": sorted(elites),
        "weights": weights.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        **(extra or {}),
    }
    atomic_write_json(stem.with_suffix(".json"), sealed(meta))
    return stem.with_suffix(".json")


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[WorldModel, dict]:
    """The world model of ``load_checkpoint_parts``, and the JSON."""
    model, _, meta = load_checkpoint_parts(path, device)
    return model, meta


def _check_shapes(module_of_meta, state: dict, what: str) -> None:
    """Compare ``state``'s tensor shapes with those of ``module_of_meta()`` built on the meta device,
    before anything a hand-made spec asks for is allocated."""
    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in module_of_meta().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want != got:
        bad = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))[:3]
        raise RuntimeError(f"{what} tensors {bad} have shapes {[got.get(k) for k in bad]}, its spec expects "
                           f"{[want.get(k) for k in bad]}")


def _weights_bytes_bound(meta: dict) -> int:
    """The most a checkpoint's weights file holds for the model its JSON describes (its tensors, counted on the meta
    device, plus a header); ``MAX_WEIGHTS_BYTES`` where the spec is not one (named later, when it is built)."""
    try:
        spec = WorldModelSpec(**meta["spec"])
        vspec = ValueSpec(**meta["value_spec"]) if meta.get("value_spec") is not None else None
        with torch.device("meta"):
            bounds = torch.zeros(spec.act_dim)
            modules = [WorldModel(spec, bounds, bounds), *([ActorCritic(vspec, bounds, bounds)] if vspec else [])]
            tensors = sum(v.numel() * v.element_size() for m in modules for v in m.state_dict().values())
    except (TypeError, ValueError, KeyError, RuntimeError, OverflowError):
        return MAX_WEIGHTS_BYTES
    return min(tensors + MAX_CONFIG_BYTES, MAX_WEIGHTS_BYTES)


def _weights_format(blob: bytes) -> str | None:
    """The checkpoint format a safetensors file's header names (None: none, or not readable as one)."""
    try:
        n = int.from_bytes(blob[:8], "little")
        if not 0 < n <= min(len(blob) - 8, MAX_CONFIG_BYTES):
            return None
        fmt = json.loads(blob[8:8 + n]).get("__metadata__", {}).get("format")
        return fmt if isinstance(fmt, str) else None
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None


_ROUND = re.compile(r"model_r(\d+)")
"""A round's checkpoint name (stem), with its round number."""


def _earlier_current_round(cfg_path: Path) -> Path | None:
    """An earlier round's checkpoint beside ``cfg_path`` written in today's format, if any (a legacy-format file
    that follows one was relabelled: a run upgraded mid-way goes from old to new formats only)."""
    m = _ROUND.fullmatch(cfg_path.stem)
    if m is None:
        return None
    for other in sorted(cfg_path.parent.glob("model_r*.json")):
        n = _ROUND.fullmatch(other.stem)
        if n is None or int(n.group(1)) >= int(m.group(1)):
            continue
        try:
            check_regular_file(other, "checkpoint config", MAX_CONFIG_BYTES)
            if loads_json(other.read_text()).get("format") == FORMAT:
                return other
        except (OSError, ValueError, AttributeError):  # an unreadable neighbour says nothing either way
            continue
    return None


def load_checkpoint_parts(path: str | Path, device: str = "cpu") -> tuple[WorldModel, ActorCritic | None, dict]:
    """Load ``NAME.json`` (or its ``.safetensors`` sibling): the world model, the value and policy (None in
    a checkpoint without them) and the JSON. Raises ValueError naming the file on anything truncated,
    corrupted, mismatched or not ours, and on a format version it does not know."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() not in (".json", ".safetensors"):  # checkpoints/ read as checkpoints.json
        raise ValueError(f"{str(path)!r} is not a checkpoint: expected a model_rNNNN.json file (or its .safetensors "
                         "weights) of a run's checkpoints/ folder")
    cfg_path = path.with_suffix(".json")
    try:
        check_regular_file(cfg_path, "checkpoint config", MAX_CONFIG_BYTES)  # a FIFO hung eval, /dev/zero grew
        meta = loads_json(cfg_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"checkpoint config {str(cfg_path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"checkpoint config {str(cfg_path)!r} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or not str(meta.get("format", "")).startswith("robot-wm/world-model/"):
        raise ValueError(f"{str(cfg_path)!r} is not a robot-wm world-model checkpoint (format {FORMAT!r} expected)")
    if meta["format"] not in FORMATS:
        version = meta["format"].rsplit("/", 1)[-1]
        newer = version.isdigit() and version.isascii() and int(version) > int(FORMAT.rsplit("/", 1)[-1])
        # '.../3 ' (a trailing space) was called "written by a newer robot-wm" (probe 11)
        raise ValueError(f"checkpoint {str(cfg_path)!r} has format {meta['format']!r}; this robot-wm "
                         f"({robot_wm.__version__}) reads {', '.join(FORMATS)}: "
                         + ("a newer robot-wm wrote it" if newer else "no robot-wm writes that format (an edited "
                            "or damaged file?)"))
    # Every file that carries the hash is checked, whatever format it claims: a format-3 file relabelled as
    # format 2 (which had no hash) was loaded unchecked with its value scale and elites edited (probe 11).
    if (meta["format"] == FORMAT or CONFIG_HASH_KEY in meta) and meta.get(CONFIG_HASH_KEY) != config_digest(meta):
        raise ValueError(f"checkpoint config {str(cfg_path)!r} was changed after it was written (its "
                         f"{CONFIG_HASH_KEY} does not match its content): a damaged or edited file; use "
                         "another round (checkpoints/model_rNNNN.json) or retrain")
    if meta["format"] != FORMAT and (newer := _earlier_current_round(cfg_path)) is not None:
        # relabelled as format 2 with its hash deleted, it loaded with edited elites and value scale (probe 12)
        raise ValueError(f"checkpoint config {str(cfg_path)!r} says format {meta['format']!r}, which has no hash of "
                         f"its own, but the earlier round {newer.name!r} beside it is {FORMAT!r}: a run's rounds "
                         "never go back to an older format, so this file was relabelled or edited; use another "
                         "round or retrain")
    if not isinstance(meta.get("weights"), str) or not isinstance(meta.get("spec"), dict) or \
            not isinstance(meta.get("elites"), list):
        raise ValueError(f"checkpoint config {str(cfg_path)!r} lacks 'weights' (a file name), 'spec' (an object) "
                         "or 'elites' (a list)")
    named = _ROUND.fullmatch(cfg_path.stem)  # a run's checkpoint says which round it is
    if named and (meta.get("round") != int(named.group(1)) or meta["weights"] != f"{cfg_path.stem}.safetensors"):
        raise ValueError(f"checkpoint config {str(cfg_path)!r} describes round {meta.get('round')!r} with weights "
                         f"{meta['weights']!r}: another round's file was copied over it (expected round "
                         f"{int(named.group(1))}, {cfg_path.stem}.safetensors)")
    weights = cfg_path.parent / Path(meta["weights"]).name
    try:
        check_regular_file(weights, "checkpoint weights", MAX_WEIGHTS_BYTES)
        # the size its spec gives, before anything is read: a sparse 7 GiB file in place of 94 KB of weights was read
        # whole (3.5 GB resident, a MemoryError traceback under a limit) to find its hash wrong (probe 34)
        if (size := weights.stat().st_size) > (bound := _weights_bytes_bound(meta)):
            raise ValueError(f"checkpoint weights {str(weights)!r} are {size:,} bytes, but the model {cfg_path.name} "
                             f"describes holds at most {bound:,}: the file was replaced or damaged; use another round "
                             "(checkpoints/model_rNNNN.json) or retrain")
        blob = weights.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"checkpoint weights {str(weights)!r} named by {str(cfg_path)!r} do not exist") from None
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ValueError(f"checkpoint weights {str(weights)!r} do not match the hash in {cfg_path.name} "
                         "(truncated, corrupted or from another model)")
    if (written := _weights_format(blob)) is not None and written != meta["format"]:
        # relabelled as format 2 with its hash deleted, it loaded with edited elites and value scale (probe 12)
        raise ValueError(f"checkpoint config {str(cfg_path)!r} says format {meta['format']!r}, but its weights "
                         f"{weights.name!r} were written as {written!r}: the JSON was relabelled or edited; use "
                         "another round or retrain")
    try:
        tensors = st_load(blob)
        bad = sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all())
        if bad:  # the hash only says the file is what was written: a diverged training writes NaN faithfully
            raise ValueError(f"checkpoint {str(cfg_path)!r} holds non-finite weights in {bad[:5]}"
                             f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}: it cannot plan; "
                             "use an earlier round (checkpoints/model_rNNNN.json)")
        if huge := _huge_weights(tensors):  # one Q head's weight of 1e38 (hashes recomputed) planned on, exit 0
            raise ValueError(f"checkpoint {str(cfg_path)!r} holds weights beyond +-{MAX_WEIGHT:g} in {huge[:5]}, "
                             "which training never writes (it stops first): the file was edited or damaged; use an "
                             "earlier round (checkpoints/model_rNNNN.json)")  # (probe 29)
        # a scale of 0 (hash recomputed) divided every state by zero: each step fell back, "return 0.0" (probe 22)
        if flat := sorted(k for k, v in tensors.items() if _is_scale(k) and not bool((v >= MIN_SCALE).all())):
            raise ValueError(f"checkpoint {str(cfg_path)!r} holds normaliser scales below {MIN_SCALE:g} in {flat[:5]} "
                             "(fitting never writes one): the file was edited; use an earlier round "
                             "(checkpoints/model_rNNNN.json)")
        state = {k: v for k, v in tensors.items() if not k.startswith(VALUE_PREFIX)}
        value_state = {k[len(VALUE_PREFIX):]: v for k, v in tensors.items() if k.startswith(VALUE_PREFIX)}
        spec = WorldModelSpec(**meta["spec"])
        lo, hi = state["action_low"], state["action_high"]
        _check_shapes(lambda: WorldModel(spec, lo.to("meta"), hi.to("meta")), state, "world model")
        model = WorldModel(spec, lo, hi)
        model.load_state_dict(state)
        value = None
        if meta.get("value_spec") is not None or value_state:
            vspec = ValueSpec(**meta["value_spec"])
            _check_shapes(lambda: ActorCritic(vspec, lo.to("meta"), hi.to("meta")), value_state, "value")
            value = ActorCritic(vspec, lo, hi)
            value.load_state_dict(value_state)
    except (SafetensorError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"checkpoint {str(cfg_path)!r} does not fit a robot-wm world model: {e}") from None
    members = spec.ensemble_size
    elites = meta["elites"]
    if _elites_problem(elites, members):
        # [0, 0, 0, 0], re-sealed, planned with one member four times (probe 24): a round saves them distinct, sorted
        raise ValueError(f"checkpoint {str(cfg_path)!r}: elites {reprlib.repr(elites)} are not distinct member indices in "
                         f"[0, {members}), sorted")
    if value is not None and (problem := _value_scale_problem(value.spec, meta.get("action_repeat"))):
        raise ValueError(f"checkpoint {str(cfg_path)!r}: {problem}, which training writes: the file was edited; use "
                         "an earlier round (checkpoints/model_rNNNN.json)")
    return model.to(device), value.to(device) if value is not None else None, meta


def _elites_problem(elites, members: int) -> bool:
    """Whether ``elites`` is not what a checkpoint holds: a non-empty, sorted list of distinct member indices in
    [0, members) (the one rule of ``save_checkpoint`` and the loader)."""
    return not (isinstance(elites, list) and elites
                and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < members for i in elites)
                and elites == sorted(set(elites)))


def _value_scale_problem(spec: ValueSpec, repeat) -> str | None:
    """Why a value's scale is not its action repeat over (1 - its discount), as ``new_value`` builds it, or None:
    1e30, re-sealed, planned with values clipped to 1e30 and lost a third of its return (probe 24)."""
    steps = spec.value_scale * (1 - spec.discount)  # the environment steps per control step that it assumes
    expected = repeat if isinstance(repeat, int) and not isinstance(repeat, bool) else round(steps)
    if 1 <= expected <= 100_000 and math.isclose(steps, expected, rel_tol=1e-6):
        return None
    return (f"value_scale {spec.value_scale!r} is not the action repeat ({repeat!r}) over 1 - the value's discount "
            f"({spec.discount!r})")


MIN_SCALE = 1e-6
"""A normaliser's fitted std is at least its eps (``Normalizer``: 1e-6; a constant dimension keeps 1)."""


def _is_scale(key: str) -> bool:
    """Whether weights ``key`` is a normaliser's std (``obs_norm.std``, the value's ``..._norm.std``)."""
    parent, _, leaf = key.rpartition(".")
    return leaf == "std" and parent.endswith("norm")


def checkpoint_hash(path: str | Path) -> str:
    return loads_json(Path(path).with_suffix(".json").read_text())["sha256"]
