"""The contract between the exporter and the runtime: format tags and metadata keys.

Plain constants (no torch, no onnx) so that ``robot_wm.runtime`` can share them.
"""

PLANNER_FORMAT = "robot-wm/planner-onnx/1"
DYNAMICS_FORMAT = "robot-wm/dynamics-onnx/1"

FORMAT_KEY = "robot_wm.format"
GRAPH_HASH_KEY = "robot_wm.graph_sha256"  # sha256 of the graph (weights included): a flipped byte is caught


META_HASH_KEY = "robot_wm.metadata_sha256"  # sha256 of every other metadata entry: an edited entry is caught


def metadata_sha256(props: dict[str, str]) -> str:
    """Hash of a planner's metadata entries (all but this hash's own), stored in and checked against metadata."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps({k: v for k, v in props.items() if k != META_HASH_KEY},
                                     sort_keys=True).encode()).hexdigest()


def graph_sha256(graph) -> str:
    """Hash of an ``onnx.GraphProto`` (deterministic serialisation), stored in and checked against metadata."""
    import hashlib

    return hashlib.sha256(graph.SerializeToString(deterministic=True)).hexdigest()
# Every planner file carries these in ``metadata_props`` (all values are strings; lists are JSON).
PLANNER_KEYS = ("robot_wm.format", "robot_wm.version", "state_dim", "action_dim", "action_low", "action_high",
                "control_period", "horizon", "samples", "iterations", "optimizer", "noise", "noise_shape",
                "source_sha256", "task", "action_repeat", "members", "model_flops_per_step", "planner_spec",
                "value", "policy_samples", "goal", "reward_weight")

PLANNER_INPUTS = ("state", "prev_plan", "noise")  # ``noise`` only when noise="input"
GOAL_INPUTS = ("goal", "goal_weights")  # after those, in a goal-conditioned planner (metadata goal=1)
PLANNER_OUTPUTS = ("action", "next_plan", "best_return", "spread", "valid")
GUARD_INPUT, GUARD_OUTPUT = "guard", "next_guard"  # last, in a planner with a value guard (metadata value_guard=1)
GUARD_INITIAL = (float("nan"), 0.0, 0.0, 0.0)  # its state at an episode's start (policies.mpc.guard)
DYNAMICS_INPUTS = ("state", "action")
DYNAMICS_OUTPUTS = ("next_state", "reward")
