"""Trace ``PlanStep`` (the very ``plan_step`` that eager torch and torch.compile run) into ONNX.

The planner graph holds everything a control step needs: input normalisation (the model's
normalisers are constants in the graph), sampling (colored-noise filter, clamping to the bounds),
the ensemble rollouts of every sample over the horizon, scoring (mean return minus the uncertainty
penalty), the fixed number of CEM/MPPI/iCEM iterations and the warm start (``next_plan`` is the
refined plan shifted by one step).

Two noise variants (``noise=``):

* ``"internal"`` (default): inputs ``state``, ``prev_plan``; the graph draws its standard-normal
  noise itself (ONNX ``RandomNormalLike``), fresh on every run.
* ``"input"``: inputs ``state``, ``prev_plan``, ``noise`` (I, N, H, A) standard normal. Deterministic:
  the parity test and the CUDA-graph path use it (a captured CUDA graph would replay in-graph noise).

Outputs: ``action`` (A,), ``next_plan`` (H, A), ``best_return`` (), ``spread`` (), ``valid`` () bool.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path

import onnx
import torch
from torch import nn

import robot_wm
from policies.mpc.guard import initial_guard
from policies.mpc.planner import PlanStep, learned_score
from policies.mpc.step import StepSpec
from robot_wm.export.format import (
    DYNAMICS_FORMAT,
    DYNAMICS_INPUTS,
    DYNAMICS_OUTPUTS,
    FORMAT_KEY,
    GOAL_INPUTS,
    GRAPH_HASH_KEY,
    GUARD_INPUT,
    GUARD_OUTPUT,
    META_HASH_KEY,
    PLANNER_FORMAT,
    PLANNER_OUTPUTS,
    graph_sha256,
    metadata_sha256,
)
from robot_wm.goal import Goal
from robot_wm.io import atomic_write_bytes
from robot_wm.memory import planner_step_bytes
from robot_wm.model.ensemble import MAX_STATE_Z, WorldModel
from robot_wm.model.folded import planning_dims
from robot_wm.model.value import ActorCritic
from robot_wm.runtime.graph_bounds import MAX_NODES, node_count

log = logging.getLogger(__name__)

OPSET = 18


class _PlannerInputNoise(nn.Module):
    """Inputs state, prev_plan, noise, then the step's context (goal, goal_weights) where it has one, then the value
    guard's state where the step is guarded (an output ``next_guard`` too)."""

    def __init__(self, step: PlanStep):
        super().__init__()
        self.step = step

    def forward(self, state, prev_plan, noise, *rest):
        if not self.step.guarded:
            out = self.step(state, prev_plan, noise, *rest)
            return out.action, out.next_plan, out.best_return, out.spread, out.valid
        out = self.step(state, prev_plan, noise, *rest[:-1], guard=rest[-1])
        return out.action, out.next_plan, out.best_return, out.spread, out.valid, out.guard


class _PlannerInternalNoise(_PlannerInputNoise):
    """The same graph, drawing its standard-normal noise in-graph."""

    def __init__(self, step: PlanStep):
        super().__init__(step)
        self.shape = step.spec.noise_shape(step.low.numel())

    def forward(self, state, prev_plan, *rest):
        noise = torch.randn(self.shape, dtype=state.dtype, device=state.device)
        return super().forward(state, prev_plan, noise, *rest)


class _Dynamics(nn.Module):
    """state (B, S), action (B, A) -> every member's mean prediction: next_state (E, B, S), reward (E, B)."""

    def __init__(self, model: WorldModel):
        super().__init__()
        self.model = model

    def forward(self, state, action):
        e = self.model.members
        return self.model.step(state.expand(e, *state.shape), action.expand(e, *action.shape))


def _mlp_flops(dims: list[int]) -> int:
    return sum(2 * i * o for i, o in pairwise(dims))


def model_flops(model: WorldModel, spec: StepSpec, value: ActorCritic | None = None) -> int:
    """Matmul FLOPs of one planning step at the networks' own layer sizes (planning uses the mean head
    only; the folded bias unit is not counted): every sample, member, horizon step and iteration through
    the world model, plus the executed plan scored once more at the end; with a value, V (policy + every
    Q head) of every scored sequence's last state per member, and the policy rollouts (policy + every
    member per step)."""
    per_eval = _mlp_flops(planning_dims(model.spec))
    scored = spec.samples * spec.iterations + 1
    flops = per_eval * model.members * scored * spec.horizon
    if value is not None:
        v = value.spec
        hid = [v.hidden] * v.layers
        pi = _mlp_flops([v.obs_dim, *hid, 2 * v.act_dim])
        q = _mlp_flops([v.obs_dim + v.act_dim, *hid, 1]) * v.q_heads
        flops += (pi + q) * model.members * scored
        flops += (pi + per_eval * model.members) * spec.policy_samples * spec.horizon
    return flops


def _finish(proto: onnx.ModelProto, out: Path, metadata: dict[str, str]) -> onnx.ModelProto:
    """Attach metadata, check (full), refuse external data, write atomically."""
    del proto.metadata_props[:]
    props = {k: str(v) for k, v in {**metadata, GRAPH_HASH_KEY: graph_sha256(proto.graph)}.items()}
    for k, v in sorted({**props, META_HASH_KEY: metadata_sha256(props)}.items()):
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name, proto.producer_version = "robot-wm", robot_wm.__version__
    for t in onnx.external_data_helper._get_all_tensors(proto):
        if onnx.external_data_helper.uses_external_data(t):
            raise ValueError(f"export produced external data for {t.name!r}; refusing to write a split file")
    onnx.checker.check_model(proto, full_check=True)
    atomic_write_bytes(Path(out), proto.SerializeToString())
    return proto


def _to_proto(module: nn.Module, args: tuple, input_names, output_names, dynamic_shapes=None) -> onnx.ModelProto:
    # torch's exporter warns about its own internals; with PYTHONWARNINGS=error those warnings became a traceback
    # asking the user to file a PyTorch issue (probe of 2026-11-26)
    # ... and its registry logs four "torchvision is not installed" lines on every export (probe 29): not ours to act on
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry.setLevel(logging.ERROR)
        try:
            prog = torch.onnx.export(module, args, None, dynamo=True, external_data=False, opset_version=OPSET,
                                     input_names=list(input_names), output_names=list(output_names),
                                     dynamic_shapes=dynamic_shapes, verbose=False)
        finally:
            registry.setLevel(level)
    return prog.model_proto


def export_planner(model: WorldModel, spec: StepSpec, out: str | Path, *, noise: str = "internal",
                   metadata: dict | None = None, value: ActorCritic | None = None, goal: Goal | None = None,
                   reward_weight: float = 1.0) -> onnx.ModelProto:
    """Write the whole planning step for ``model`` (already the elite subset) to ``out``; with ``value``
    the terminal value and the policy proposals are in the same graph. With a ``goal`` the graph takes
    ``goal`` and ``goal_weights`` inputs (the robot may change them every step; ``goal`` is their
    default, in the metadata) and plans toward them, ``reward_weight`` x the task's return beside."""
    if noise not in ("internal", "input"):
        raise ValueError(f"noise must be 'internal' or 'input', got {noise!r}")
    model = model.cpu().eval()
    value = value.cpu().eval() if value is not None else None
    score, spec = learned_score(model, spec, value, reward_weight=reward_weight)
    step = PlanStep(score, spec, model.action_low, model.action_high).eval()
    a = model.spec.act_dim
    state = torch.zeros(model.spec.obs_dim)
    prev = ((step.low + step.high) / 2).expand(spec.horizon, a).contiguous()
    context = () if goal is None else tuple(torch.as_tensor(v, dtype=torch.float32) for v in goal)
    if noise == "input":
        module, args = _PlannerInputNoise(step), (state, prev, torch.zeros(spec.noise_shape(a)), *context)
        inputs = ("state", "prev_plan", "noise")
    else:
        module, args, inputs = _PlannerInternalNoise(step), (state, prev, *context), ("state", "prev_plan")
    inputs += GOAL_INPUTS if goal is not None else ()
    outputs = PLANNER_OUTPUTS
    if step.guarded:  # the value guard's recurrent state, carried by the runtime like the plan
        args, inputs, outputs = (*args, initial_guard()), inputs + (GUARD_INPUT,), outputs + (GUARD_OUTPUT,)
    proto = _to_proto(module.eval(), args, inputs, outputs)
    if (nodes := node_count(proto)) > MAX_NODES:  # the runtime refuses more, whatever the metadata says (probe 40)
        raise ValueError(f"the planning step unrolled (horizon {spec.horizon} x {spec.iterations} iterations) holds "
                         f"{nodes:,} nodes, more than the {MAX_NODES:,} deploy builds: lower planner.horizon or "
                         "planner.iterations")
    meta = {
        FORMAT_KEY: PLANNER_FORMAT, "robot_wm.version": robot_wm.__version__,
        "state_dim": model.spec.obs_dim, "action_dim": a,
        "action_low": json.dumps(step.low.tolist()), "action_high": json.dumps(step.high.tolist()),
        "horizon": spec.horizon, "samples": spec.samples, "iterations": spec.iterations,
        "optimizer": spec.optimizer, "noise": noise, "noise_shape": json.dumps(list(spec.noise_shape(a))),
        "members": model.members, "model_flops_per_step": model_flops(model, spec, value),
        # what a step needs, checked by deploy before it allocates: 2,000,000 samples grew to 22 GB (probe 30)
        "planner_memory_bytes": planner_step_bytes(
            spec.samples + spec.policy_samples, spec.horizon, spec.iterations, model.spec.obs_dim, a, model.members,
            model.spec.hidden, value.spec.q_heads if value is not None else 0, value.spec.hidden if value is not None else 0),
        "value": int(value is not None), "policy_samples": spec.policy_samples, "delay": spec.delay,
        "goal": int(goal is not None), "reward_weight": reward_weight if goal is not None else 1.0,
        "value_guard": int(step.guarded),
        **({} if goal is None else {"goal_state": json.dumps(goal.state.tolist()),
                                    "goal_weights": json.dumps(goal.weights.tolist())}),
        "planner_spec": json.dumps(asdict(spec), sort_keys=True),
        "state_reach": json.dumps(_reach(model)),
        "control_period": "nan", "task": "", "action_repeat": "", "source_sha256": "",
        **{k: v for k, v in (metadata or {}).items() if v is not None},
    }
    return _finish(proto, Path(out), {k: str(v) for k, v in meta.items()})


def _reach(model: WorldModel) -> dict:
    """The states the graph plans from (``robot_wm.model.imagine.known_state``), for the runtime to name the dimension
    of one beyond them when the graph reports ``valid=False`` (probe 18: the fallback said only "beyond the reach")."""
    centre, scale = (t.detach().cpu().double() for t in model.state_reach())
    return {"centre": centre.tolist(), "scale": scale.tolist(), "max_z": MAX_STATE_Z}


def export_dynamics(model: WorldModel, out: str | Path, metadata: dict | None = None) -> onnx.ModelProto:
    """Write the dynamics ensemble alone (all members' mean predictions, batched) to ``out``."""
    model = model.cpu().eval()
    s, a = model.spec.obs_dim, model.spec.act_dim
    batch = torch.export.Dim("batch", min=1)
    proto = _to_proto(_Dynamics(model).eval(), (torch.zeros(4, s), torch.zeros(4, a)), DYNAMICS_INPUTS, DYNAMICS_OUTPUTS,
                      dynamic_shapes=({0: batch}, {0: batch}))
    meta = {FORMAT_KEY: DYNAMICS_FORMAT, "robot_wm.version": robot_wm.__version__, "state_dim": s,
            "action_dim": a, "members": model.members,
            "action_low": json.dumps(model.action_low.tolist()), "action_high": json.dumps(model.action_high.tolist()),
            **{k: v for k, v in (metadata or {}).items() if v is not None}}
    return _finish(proto, Path(out), {k: str(v) for k, v in meta.items()})
