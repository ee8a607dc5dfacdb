"""onnxruntime session for an exported planner: file checks, execution providers, robot-friendly
session options, IO binding into preallocated buffers (CUDA graphs on GPU) and warm-up.

Providers: ``"auto"`` tries TensorRT -> CUDA -> CPU and reports the one that became active;
``"tensorrt"``, ``"cuda"`` or ``"cpu"`` ask for exactly that one, and onnxruntime silently falling
back to another (e.g. CUDA libraries missing) raises ``ProviderError`` before any control step.
"""

from __future__ import annotations

import ctypes.util
import errno
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnx
import onnxruntime as ort

from robot_wm.export.format import (
    FORMAT_KEY,
    GOAL_INPUTS,
    GRAPH_HASH_KEY,
    GUARD_INITIAL,
    GUARD_INPUT,
    GUARD_OUTPUT,
    META_HASH_KEY,
    PLANNER_FORMAT,
    PLANNER_INPUTS,
    PLANNER_OUTPUTS,
    graph_sha256,
    metadata_sha256,
)
from robot_wm.goal import Goal, check_goal
from robot_wm.runtime.graph_bounds import GraphSize, check_graph
from robot_wm.runtime.interrupt import register
from sim.spec import MAX_CONTROL_PERIOD_S, as_floats, midpoint

log = logging.getLogger(__name__)

OPTIMIZERS = ("cem", "mppi", "icem")  # PlannerConfig.optimizer's values (the runtime does not import the config)
PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
AUTO_ORDER = ("tensorrt", "cuda", "cpu")


WARMUP_LIMIT_S = 60.0
"""The longest a warm-up planning step may run before it is ended and the file refused."""
MAX_PLANNER_BYTES = 2 << 30
"""A planner file larger than this (protobuf's own limit) is refused before it is read."""
MAX_INPUT_ELEMENTS = 2**26
"""Largest input a planner file may declare (values; 256 MiB of float32): the runtime allocates its buffers
from the declared sizes, so they are checked first (the default planner's noise is 3,072 values)."""
from robot_wm.io import loads_json


class ModelFileError(ValueError):
    """The ONNX file is missing, truncated, not a robot-wm planner, or does not fit the robot."""


class ProviderError(RuntimeError):
    """The requested execution provider is unavailable or onnxruntime fell back from it."""


def _parse_reach(text: str, dim: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Metadata ``state_reach`` ({centre, scale, max_z}) as (low, high) per state dimension."""
    try:
        r = loads_json(text)
        centre, scale = (np.asarray(r[k], dtype=np.float64) for k in ("centre", "scale"))
        max_z = r["max_z"]
    except (ValueError, TypeError, KeyError) as e:
        raise ModelFileError(f"{where}: metadata state_reach is malformed ({e!r})") from None
    with np.errstate(over="ignore", invalid="ignore"):
        fine = isinstance(max_z, int | float) and not isinstance(max_z, bool) and centre.shape == scale.shape == (dim,)
        low, high = (centre - max_z * scale, centre + max_z * scale) if fine else (centre, centre)
        low, high = low.astype(np.float32), high.astype(np.float32)  # a scale of 1e38 was numpy's warning (probe 37)
        fine = fine and 0 < max_z and bool(np.all(scale > 0) and np.all(np.isfinite(low)) and np.all(np.isfinite(high)))
    if not fine:
        raise ModelFileError(f"{where}: metadata state_reach does not hold {dim} finite centres, {dim} positive scales "
                             "and a positive max_z whose range is finite in float32 (the file was edited or damaged)")
    return low, high


@dataclass(frozen=True)
class PlannerMeta:
    state_dim: int
    action_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    control_period: float
    horizon: int
    samples: int
    iterations: int
    optimizer: str
    noise: str                      # "internal" (in-graph RNG) or "input"
    noise_shape: tuple[int, ...]
    task: str
    action_repeat: int | None
    version: str
    source_sha256: str
    model_flops_per_step: int
    raw: dict
    goal: Goal | None = None        # a goal-conditioned planner's default goal (inputs goal, goal_weights)
    delay: int = 0                  # control steps a command takes to act (prev_plan[:delay] is in flight)
    reach: tuple[np.ndarray, np.ndarray] | None = None  # (low, high) per state dimension the graph plans from
    value_guard: bool = False       # input guard / output next_guard: the value guard's state (policies.mpc.guard)

    @staticmethod
    def check_format(props: dict[str, str], where: str) -> None:
        """Refuse metadata that does not call its file a robot-wm planner."""
        if props.get(FORMAT_KEY) != PLANNER_FORMAT:
            found = props.get(FORMAT_KEY)
            raise ModelFileError(f"{where} is not a robot-wm planner (metadata {FORMAT_KEY}={found!r}, "
                                 f"expected {PLANNER_FORMAT!r}); export one with `robot-wm export`")

    @classmethod
    def parse(cls, props: dict[str, str], where: str) -> PlannerMeta:
        cls.check_format(props, where)
        try:
            low, high = (as_floats(loads_json(props[k]), f"metadata {k}") for k in ("action_low", "action_high"))
            rep = props.get("action_repeat", "")
            meta = cls(int(props["state_dim"]), int(props["action_dim"]), low, high,
                       float(props["control_period"]), int(props["horizon"]), int(props["samples"]),
                       int(props["iterations"]), props["optimizer"], props["noise"],
                       tuple(loads_json(props["noise_shape"])), props.get("task", ""),
                       int(rep) if rep else None, props.get("robot_wm.version", "?"),
                       props.get("source_sha256", ""), int(props.get("model_flops_per_step", 0)), dict(props))
        except (KeyError, ValueError, TypeError) as e:
            raise ModelFileError(f"{where}: planner metadata is incomplete or malformed ({e!r})") from None
        if props.get("goal", "0") not in ("0", "1"):
            raise ModelFileError(f"{where}: metadata goal={props['goal']!r}, expected 0 or 1")
        if props.get("goal") == "1":
            try:
                goal = check_goal(loads_json(props["goal_state"]), loads_json(props["goal_weights"]),
                                  meta.state_dim, "the file's default goal")
            except (KeyError, ValueError, TypeError) as e:
                raise ModelFileError(f"{where}: goal metadata is incomplete or malformed ({e})") from None
            meta = replace(meta, goal=goal)
        delay = props.get("delay", "0")  # files exported before 2026-11-27 have none: no delay
        if not (delay.isascii() and delay.isdigit() and int(delay) < meta.horizon):
            raise ModelFileError(f"{where}: metadata delay={delay!r}, expected a whole number from 0 to "
                                 f"horizon - 1 = {meta.horizon - 1} (the file was edited or damaged)")
        meta = replace(meta, delay=int(delay))
        guard = props.get("value_guard", "0")  # files exported before 2026-11-28 have none: no guard
        if guard not in ("0", "1"):
            raise ModelFileError(f"{where}: metadata value_guard={guard!r}, expected 0 or 1 (the file was edited or "
                                 "damaged)")
        meta = replace(meta, value_guard=guard == "1")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in meta.noise_shape):
            raise ModelFileError(f"{where}: metadata noise_shape {str(list(meta.noise_shape))[:80]} is not a list of "
                                 "whole numbers (the file was edited or damaged)")
        # Python's integers: 2^64 overflowed numpy's product into a traceback (probe 35)
        sizes = {"state_dim": meta.state_dim, "horizon x action_dim": meta.horizon * meta.action_dim,
                 "noise_shape": math.prod(meta.noise_shape) if meta.noise_shape else 1}
        if any(n < 1 or n > MAX_INPUT_ELEMENTS for n in sizes.values()):
            raise ModelFileError(f"{where}: the metadata declares input sizes {sizes} (noise_shape "
                                 f"{list(meta.noise_shape)}); each must be 1 to {MAX_INPUT_ELEMENTS:,} values")
        if low.shape != (meta.action_dim,) or high.shape != (meta.action_dim,) or not np.all(low <= high) or \
                not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):  # -inf was the fallback's command
            raise ModelFileError(f"{where}: metadata action_low={props['action_low'][:80]}, action_high="
                                 f"{props['action_high'][:80]}: expected action_dim={meta.action_dim} finite float32 "
                                 "values each, low <= high (the file was edited or damaged)")
        # What the runtime acts on (a NaN control period skipped the robot check; a negative action repeat
        # reached the simulator's config) and what it prints: each checked, naming the key.
        period = meta.control_period  # nan: unknown (a file exported without a run), then unchecked and said so
        bad = {"control_period": (props["control_period"],
                                  f"a number of seconds above 0 and at most {MAX_CONTROL_PERIOD_S:g}, or nan")
               if not (math.isnan(period) or 0 < period <= MAX_CONTROL_PERIOD_S) else None,
               "action_repeat": (rep, "empty or a whole number from 1 to 1000")
               if meta.action_repeat is not None and not 1 <= meta.action_repeat <= 1000 else None,
               "samples": (props["samples"], "at least 1") if meta.samples < 1 else None,
               "iterations": (props["iterations"], "at least 1") if meta.iterations < 1 else None,
               "optimizer": (meta.optimizer, f"one of {', '.join(OPTIMIZERS)}") if meta.optimizer not in OPTIMIZERS
               else None,
               "noise": (meta.noise, "internal or input") if meta.noise not in ("internal", "input") else None}
        if any(bad.values()):
            k, (v, expected) = next((k, v) for k, v in bad.items() if v)
            raise ModelFileError(f"{where}: metadata {k}={v!r}, expected {expected} (the file was edited or damaged)")
        plan_shape = [meta.iterations, meta.samples, meta.horizon, meta.action_dim]
        if list(meta.noise_shape) != plan_shape:  # samples=3 was printed for a graph of 16 (probe 17)
            raise ModelFileError(f"{where}: metadata noise_shape {list(meta.noise_shape)} does not fit iterations, "
                                 f"samples, horizon and action_dim {plan_shape} (the file was edited or damaged)")
        meta._check_spec(props, where)
        if "state_reach" in props:  # files exported before 2026-11-28 have none: the fallback says less
            meta = replace(meta, reach=_parse_reach(props["state_reach"], meta.state_dim, where))
        return meta

    def _check_spec(self, props: dict[str, str], where: str) -> None:
        """The keys the runtime acts on against ``planner_spec``, the settings the graph was built with (every planner
        file has it, since the first export): an edited ``delay`` (hash recomputed) was printed and written into
        recordings, which realign by it (probe 18); removing ``planner_spec`` skipped the check (probe 19)."""
        try:
            spec = loads_json(props["planner_spec"])
        except KeyError:
            raise ModelFileError(f"{where}: metadata planner_spec is missing (the file was edited or damaged; export "
                                 "the planner again)") from None
        except ValueError as e:
            raise ModelFileError(f"{where}: metadata planner_spec is not JSON ({e})") from None
        if not isinstance(spec, dict):
            raise ModelFileError(f"{where}: metadata planner_spec is {str(spec)[:40]!r}, expected an object")
        try:
            policy = int(props.get("policy_samples", "0"))
        except ValueError:
            raise ModelFileError(f"{where}: metadata policy_samples={props['policy_samples']!r}, expected a whole "
                                 "number") from None
        # older files' specs have no delay (nor metadata delay: the two came together) nor policy samples (no value
        # then); a file whose metadata says a delay has it in its spec (removing it passed as "older": probe 20)
        top = {"horizon": (self.horizon, None), "samples": (self.samples, None), "iterations": (self.iterations, None),
               "optimizer": (self.optimizer, None), "delay": (self.delay, None if "delay" in props else 0),
               "policy_samples": (policy, 0)}
        for key, (value, default) in top.items():
            built = spec.get(key, default)
            if type(built) is not type(value) or built != value:  # "1" for 1 passed (probe 19)
                raise ModelFileError(f"{where}: metadata {key}={value!r}, but the graph was built with {key}="
                                     f"{built!r} (metadata planner_spec): the file was edited or damaged; export "
                                     "the planner again")
        guarded = isinstance(g := spec.get("value_guard", 0), int | float) and g > 0 and props.get("value") == "1"
        if guarded != self.value_guard:
            raise ModelFileError(f"{where}: metadata value_guard={int(self.value_guard)}, but the graph was built "
                                 f"with planner value_guard={g!r} and value={props.get('value')!r}: the file was "
                                 "edited or damaged; export the planner again")

    def check_robot(self, state_dim: int, low, high, control_period: float | None = None) -> None:
        """Refuse a planner trained for another robot (sizes, bounds, control period)."""
        if isinstance(state_dim, bool) or not isinstance(state_dim, int | np.integer):  # "5" was "state size 5 !=
            raise TypeError(f"state_dim={state_dim!r}: expected a whole number (the robot's state size)")  # 5" (31)
        problems = []
        if state_dim != self.state_dim:
            problems.append(f"state size {state_dim} != planner's {self.state_dim}")
        low, high = np.asarray(low, dtype=np.float32).reshape(-1), np.asarray(high, dtype=np.float32).reshape(-1)
        if low.shape != (self.action_dim,):
            problems.append(f"action size {low.size} != planner's {self.action_dim}")
        elif not (np.allclose(low, self.action_low, atol=1e-6) and np.allclose(high, self.action_high, atol=1e-6)):
            problems.append(f"action bounds [{low.tolist()}, {high.tolist()}] != planner's "
                            f"[{self.action_low.tolist()}, {self.action_high.tolist()}]")
        if control_period is not None and math.isfinite(self.control_period) and \
                not math.isclose(control_period, self.control_period, rel_tol=1e-6):
            problems.append(f"control period {control_period:g}s != planner's {self.control_period:g}s")
        if problems:
            raise ModelFileError("planner does not match the robot: " + "; ".join(problems))


class PlanResult(NamedTuple):
    action: np.ndarray      # (A,) float32, copied out of the bound buffers
    next_plan: np.ndarray   # (H, A)
    best_return: float
    spread: float
    valid: bool


def session_options(threads: int) -> ort.SessionOptions:
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or not 1 <= threads <= 1024:
        raise ValueError(f"threads={threads!r}: expected a whole number from 1 to 1024 (onnxruntime intra-op threads)")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-spinning after a run
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 4  # fatal only: every error reaches robot-wm as an exception it words (probe 40: an
    # onnxruntime error line in raw ANSI colour came first)
    return so


BUILD_LIMIT_S = 120.0
"""How long onnxruntime may take to build a planner's graph on the CPU: a forged graph's product of two constant
8,192 x 8,192 tensors took 17 s as onnxruntime folded it at load (16,384: minutes), outside every check (probe 41).
An export of 100,000 nodes, the most a planner holds, builds in about 10 s."""


class BuildTooLong(RuntimeError):
    """onnxruntime's build of a planner's graph ran past ``BUILD_LIMIT_S`` (the build is abandoned)."""


ABANDONED_RUNS: list[threading.Event] = []
"""One event per graph build or planning step a stop left running (set when it ends): a process that exits while one
runs is ended by ``os._exit`` (``robot_wm.cli.entry``), since onnxruntime aborts when Python finalizes around it."""


def waited(work: Callable[[], Any], name: str, poll_s: float, check: Callable[[float], None],
           abandoned: Callable[[], object] = lambda: None) -> Any:
    """``work()`` in a daemon thread of its own while this thread waits for it, calling ``check(seconds waited)``
    every ``poll_s`` (it raises to stop waiting); its value, or the exception it raised, in this thread. onnxruntime
    does not return to Python until a build or a step ends, so a stop handler waited for it (below). A wait ended by
    any exception (a stop handler's, ``check``'s) leaves the work running: ``abandoned()`` is called, and the work's
    event joins ``ABANDONED_RUNS``."""
    out: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as e:  # noqa: BLE001 -- handed to the waiting thread as it stands
            out["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    t0 = time.monotonic()
    try:
        while not done.wait(poll_s):  # (an event, not join: CPython marks a thread ended when a signal interrupts join)
            check(time.monotonic() - t0)
    except BaseException:
        abandoned()
        ABANDONED_RUNS.append(done)
        raise
    if "error" in out:
        raise out["error"]
    return out["value"]


def build_session(blob: bytes, options: ort.SessionOptions, providers: list) -> ort.InferenceSession:
    """``ort.InferenceSession`` of ``blob``, built in a thread of its own while the main thread waits (``waited``):
    SIGTERM waited for the build of a forged graph of a million nodes, 275 s (probe 40). The waiting main thread runs
    the command's stop handler at once. On the CPU a build past ``BUILD_LIMIT_S`` is ended too (a TensorRT engine may
    take minutes). Off the main thread (no signal handler runs there), built in place."""
    def build() -> ort.InferenceSession:
        return ort.InferenceSession(blob, options, providers=providers)

    if threading.current_thread() is not threading.main_thread():
        return build()
    cpu = all((p if isinstance(p, str) else p[0]) == "CPUExecutionProvider" for p in providers)

    def check(waited_s: float) -> None:
        if cpu and waited_s > BUILD_LIMIT_S:  # work hidden in constants, folded at load (probe 41)
            raise BuildTooLong(f"onnxruntime took more than {BUILD_LIMIT_S:g} s to build the graph (a planner exported "
                               "by robot-wm builds in seconds): it holds work its checks do not see, such as products "
                               "of constants folded as it loads; the file was edited after export; export the planner "
                               "again")

    return waited(build, "onnxruntime-build", 0.05, check)


def _libraries_present(provider: str) -> bool:
    """Whether the shared libraries a GPU provider needs can be found (the NVIDIA driver, and
    TensorRT's runtime for TensorRT). onnxruntime-gpu lists these providers even on a CPU-only machine."""
    needs = {"tensorrt": ("cuda", "nvinfer"), "cuda": ("cuda",)}.get(provider, ())
    return all(ctypes.util.find_library(lib) for lib in needs)


def provider_chain(request: str, cuda_graph: bool, cache_dir: str | None) -> list:
    """The providers list handed to onnxruntime (with options) for ``request``."""
    request = request.lower()
    if request not in (*PROVIDERS, "auto"):
        raise ProviderError(f"unknown provider {request!r}; choose auto, {', '.join(PROVIDERS)}")
    available = ort.get_available_providers()
    if request != "auto" and PROVIDERS[request] not in available:
        raise ProviderError(f"provider {request!r} ({PROVIDERS[request]}) is not in this onnxruntime build "
                            f"(available: {', '.join(available)})")
    start = AUTO_ORDER.index(request) if request != "auto" else 0
    chain = []
    for name in AUTO_ORDER[start:]:
        if PROVIDERS[name] not in available:
            continue
        if request == "auto" and not _libraries_present(name):
            continue  # no driver/runtime here: skip it quietly instead of letting onnxruntime fail loudly
        if name == "tensorrt":
            opts = {"trt_fp16_enable": "False", "trt_cuda_graph_enable": str(cuda_graph),
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": cache_dir or str(Path(tempfile.gettempdir()) / "robot-wm-trt")}
            chain.append((PROVIDERS[name], opts))
        elif name == "cuda":
            chain.append((PROVIDERS[name], {"enable_cuda_graph": "1" if cuda_graph else "0",
                                            "cudnn_conv_algo_search": "DEFAULT"}))
        else:
            chain.append(PROVIDERS[name])
    return chain


class StepAbandoned(RuntimeError):
    """A planning step ended by ``PlannerSession.abandon`` (or a stop) while onnxruntime still ran it."""


class PlannerSession:
    """One planner ONNX file on one execution provider; ``step(state, prev_plan)`` per control step.

    Inputs and outputs live in buffers allocated once and bound with IO binding (on the GPU the
    buffers are device memory and, with a CUDA graph, their addresses never change). A model with a
    ``noise`` input gets standard-normal noise from a seeded numpy generator; otherwise the graph
    draws its own. Safe to share between threads: a step holds the session's buffers from its inputs to
    its outputs (two threads stepping at once each got plans for the other's state, probe 15), so calls
    from several threads take turns. A planner with a value guard (metadata value_guard=1) carries its guard from
    one step to the next inside the session: use one session per robot (and ``reset`` it per episode, as
    ``ControlLoop`` does); robots stepping one session in turn would share one guard.
    """

    def __init__(self, path: str | Path, provider: str = "auto", threads: int = 2, seed: int = 0,
                 cuda_graph: bool = True, trt_cache_dir: str | None = None):
        if isinstance(path, str) and not path.strip():  # Path('') is '.': "planner file '.' is a directory" (probe 37)
            raise ModelFileError(f"planner file {path!r} is an empty path (an unset shell variable?)")
        self.path = Path(path)
        # The arguments first (threads=0 was reported as a corrupted planner file; seed=-1 and provider=None
        # raised numpy's and Python's own errors).
        options = session_options(threads)
        if not isinstance(provider, str):
            raise ProviderError(f"provider={provider!r}: expected one of {', '.join(['auto', *PROVIDERS])}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
            raise ValueError(f"seed={seed!r}: expected a whole number from 0 to {2**32 - 1}")
        blob, self._graph = self._read(self.path)
        self.requested = provider.lower()
        chain = provider_chain(self.requested, cuda_graph, trt_cache_dir)
        try:
            # Loading from bytes: the file cannot reach side files (external data is refused).
            self.session = build_session(blob, options, chain)
        except BuildTooLong as e:
            raise ModelFileError(f"planner file {str(self.path)!r}: {e}") from None
        except Exception as e:  # noqa: BLE001 -- onnxruntime raises its own exception types
            msg = str(e)
            if "external" in msg.lower():  # in a node's attribute tensor (initializers are refused by _read)
                raise _external_data(self.path) from None
            from robot_wm.sysmem import memory_blamed

            if why := memory_blamed(msg):
                raise ModelFileError(f"onnxruntime could not load {str(self.path)!r}: {why}") from None
            if ir := re.search(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)", msg):
                # said at the end of a C++ signature, after "truncated, corrupted" (probe 40)
                raise ModelFileError(f"planner file {str(self.path)!r} is written in ONNX IR version {ir[1]}; this "
                                     f"onnxruntime ({ort.__version__}) reads up to {ir[2]}: export it with this "
                                     "machine's robot-wm, or install a newer onnxruntime") from None
            # read whole as ONNX by then, its hashes matching: "truncated, corrupted or not ONNX" was wrong (probe 40)
            raise ModelFileError(f"planner file {str(self.path)!r}: onnxruntime cannot build its graph "
                                 f"({_ort_words(e)}): it was edited or damaged after export; export the planner "
                                 "again") from None
        self.meta = PlannerMeta.parse(self.session.get_modelmeta().custom_metadata_map, repr(str(self.path)))
        self._check_io()
        self.provider = self.session.get_providers()[0]
        if self.requested != "auto" and self.provider != PROVIDERS[self.requested]:
            raise ProviderError(f"asked for {self.requested} ({PROVIDERS[self.requested]}) but onnxruntime fell "
                                f"back to {self.provider}: the GPU provider could not be created (drivers, "
                                "CUDA/cuDNN libraries or no GPU); use --provider cpu or auto to accept CPU")
        self.device = "cuda" if self.provider in (PROVIDERS["cuda"], PROVIDERS["tensorrt"]) else "cpu"
        self._check_memory()
        # A captured CUDA graph would replay in-graph random numbers: only the noise-input variant uses one.
        self.cuda_graph = bool(cuda_graph and self.device == "cuda" and self.has_noise_input)
        self.rng = np.random.default_rng(seed)
        self._lock = threading.RLock()  # the bound buffers are one step's (or one warm-up's) at a time
        self._guard_before: np.ndarray | None = None  # the value guard before the last step (discard_last_step)
        self._bind()

    def _check_memory(self) -> None:
        """Refuse, before any buffer is allocated, a planner whose step needs more than the memory this computer has
        (``planner_memory_bytes`` in its metadata, estimated at export from its settings): 2,000,000 samples were
        exported, and deploy grew to 22 GB until the kernel's OOM killer (probe 30). On a GPU the host's memory is
        not the measure: not checked there."""
        from robot_wm.sysmem import beyond_share

        if self.device != "cpu":
            return
        if too_much := beyond_share(self._graph.tensor_bytes):  # all at once, at worst: a thousand tensors of 1.8 MB,
            # each within the bound, summed by one node took 22 GB (probe 35)
            raise ModelFileError(f"planner file {str(self.path)!r}: its graph's tensors take "
                                 f"{self._graph.tensor_bytes / 1e9:.1f} GB together, {too_much}: export it with fewer "
                                 "planner.samples or a shorter horizon")
        need = int(self.meta.raw.get("planner_memory_bytes"))
        if too_much := beyond_share(need):
            raise ModelFileError(f"planner file {str(self.path)!r} needs about {need / 1e9:.1f} GB a planning step "
                                 f"({self.meta.samples:,} samples x horizon {self.meta.horizon} x {self.meta.iterations} "
                                 f"iterations), {too_much}: export it with fewer planner.samples or a shorter horizon")

    # --- loading ------------------------------------------------------------------------------
    @staticmethod
    def _read(path: Path) -> tuple[bytes, GraphSize]:
        from robot_wm.io import check_regular_file

        try:
            check_regular_file(path, "planner file", MAX_PLANNER_BYTES)  # a FIFO hung deploy, /dev/zero grew
            _check_no_foreign_field(path)
            blob = path.read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"planner file {str(path)!r} does not exist") from None
        except OSError as e:
            if e.errno != errno.ELOOP:  # "Too many levels of symbolic links", exit 1 (probe 32)
                # a read error named no file: "Input/output error: a file" for /proc/self/mem (probe 34)
                raise OSError(e.errno, f"{e.strerror} (reading the planner file)", e.filename or str(path)) from None
            raise ModelFileError(f"planner file {str(path)!r} is a symbolic link loop (it leads back to itself): point "
                                 "it at a planner file") from None
        except ValueError as e:
            hint = (f"; a run directory is exported first: `robot-wm export {path} --out planner.onnx`"
                    if path.is_dir() and _is_run(path) else "")  # no hint before (probe 22)
            raise ModelFileError(f"{e}{hint}") from None
        if not blob:
            raise ModelFileError(f"planner file {str(path)!r} is empty")
        if blob[:4] == b"PK\x03\x04":  # an intact episode (.npz) was "truncated or corrupted" (tenth probe)
            raise ModelFileError(f"planner file {str(path)!r} is a zip archive (an episode .npz?), not an ONNX planner: "
                                 "expected a file written by `robot-wm export`")
        if blob.lstrip()[:1] == b"{" or blob[8:10] == b'{"':  # a checkpoint's .json or .safetensors (probe 32)
            raise ModelFileError(f"planner file {str(path)!r} is a JSON or safetensors file (a checkpoint?), not an "
                                 "ONNX planner: export the run with `robot-wm export RUN --out planner.onnx`")
        if _looks_like_toml(blob):  # a launch file was "truncated or corrupted (Wire format was corrupt)" (probe 22)
            raise ModelFileError(f"planner file {str(path)!r} is text (a launch file or a run's config.toml?), not an "
                                 "ONNX planner: export one with `robot-wm export RUN --out planner.onnx`")
        try:
            proto = onnx.load_from_string(blob)
        except Exception as e:  # protobuf DecodeError and friends
            raise ModelFileError(f"planner file {str(path)!r} is truncated or corrupted (not a readable ONNX file: {e})") from None
        _check_no_control_flow(proto, path)
        proto.DiscardUnknownFields()  # ... and inside the graph: refused before onnxruntime parses it all again
        if len(blob) > 1.1 * proto.ByteSize() + 2**20:
            raise ModelFileError(f"planner file {str(path)!r} holds {len(blob) - proto.ByteSize():,} bytes that are no "
                                 "part of an ONNX model (fields ONNX does not define): it was padded or damaged after "
                                 "export; export the planner again")
        props = {p.key: p.value for p in proto.metadata_props}
        if len(props) != len(proto.metadata_props):  # the last one silently won (probe 42)
            seen: set[str] = set()
            twice = next(p.key for p in proto.metadata_props if p.key in seen or seen.add(p.key))
            raise ModelFileError(f"planner file {str(path)!r}: its metadata key {twice!r} appears more than once: the "
                                 "file was edited after export; export the planner again")
        # A file that is no planner is refused before onnxruntime builds it: the graph bounds below hold a planner's
        # graph, and a forged 2 GiB sparse initializer took 4.4 GB to build with the format key removed (probe 40).
        PlannerMeta.check_format(props, repr(str(path)))
        if META_HASH_KEY not in props:  # deleted: edits went through
            raise ModelFileError(f"planner file {str(path)!r} carries no {META_HASH_KEY}: its metadata cannot be "
                                 "trusted (removed after export, or a file from before robot-wm wrote it); export "
                                 "the planner again with `robot-wm export`")
        if META_HASH_KEY in props and props[META_HASH_KEY] != metadata_sha256(props):
            raise ModelFileError(f"planner file {str(path)!r}: its metadata was edited after export (it does not match "
                                 f"the {META_HASH_KEY} it was exported with); export the planner again")
        stored = props.get(GRAPH_HASH_KEY)
        if _has_external_data(proto):
            # refused here, not left to onnxruntime's error: from the folder holding the side file, onnxruntime read
            # it (weights zeroed in it deployed, exit 0: probe 32)
            raise _external_data(path)
        if stored is not None and stored != graph_sha256(proto.graph):
            raise ModelFileError(f"planner file {str(path)!r} is corrupted: its graph does not match the "
                                 f"{GRAPH_HASH_KEY} it was exported with")
        try:  # before onnxruntime builds it: a forged graph's work and memory (probes 34 and 35)
            size = check_graph(proto, props)
        except ValueError as e:
            raise ModelFileError(f"planner file {str(path)!r}: {e}: the file was edited after export; export "
                                 "the planner again") from None
        return blob, size

    def _check_io(self) -> None:
        m, where = self.meta, repr(str(self.path))
        ins = {i.name: i.shape for i in self.session.get_inputs()}
        outs = [o.name for o in self.session.get_outputs()]
        want_in = (PLANNER_INPUTS if m.noise == "input" else PLANNER_INPUTS[:2]) + (GOAL_INPUTS if m.goal else ()) \
            + ((GUARD_INPUT,) if m.value_guard else ())
        if sorted(ins) != sorted(want_in) or outs[:len(PLANNER_OUTPUTS)] != list(PLANNER_OUTPUTS):
            raise ModelFileError(f"{where}: inputs {sorted(ins)} / outputs {outs} are not a robot-wm planner's")
        shapes = {"state": [m.state_dim], "prev_plan": [m.horizon, m.action_dim], "noise": list(m.noise_shape),
                  "goal": [m.state_dim], "goal_weights": [m.state_dim], GUARD_INPUT: [len(GUARD_INITIAL)]}
        for name, shape in ins.items():
            if list(shape) != shapes[name]:
                raise ModelFileError(f"{where}: input {name!r} has shape {shape}, metadata says {shapes[name]}")

    @property
    def has_noise_input(self) -> bool:
        return self.meta.noise == "input"

    # --- buffers ------------------------------------------------------------------------------
    def _bind(self) -> None:
        m = self.meta
        self._host = {"state": np.zeros(m.state_dim, np.float32),
                      "prev_plan": np.zeros((m.horizon, m.action_dim), np.float32)}
        if self.has_noise_input:
            self._host["noise"] = np.zeros(m.noise_shape, np.float32)
        if m.goal is not None:
            self._host["goal"], self._host["goal_weights"] = m.goal.state.copy(), m.goal.weights.copy()
        if m.value_guard:
            self._host[GUARD_INPUT] = np.array(GUARD_INITIAL, np.float32)
        out_shapes = {"action": ((m.action_dim,), np.float32), "next_plan": ((m.horizon, m.action_dim), np.float32),
                      "best_return": ((), np.float32), "spread": ((), np.float32), "valid": ((), np.bool_),
                      **({GUARD_OUTPUT: ((len(GUARD_INITIAL),), np.float32)} if m.value_guard else {})}
        dev = self.device
        self._in = {k: ort.OrtValue.ortvalue_from_numpy(v, dev, 0) for k, v in self._host.items()}
        self._out = {k: ort.OrtValue.ortvalue_from_shape_and_type(s, t, dev, 0) for k, (s, t) in out_shapes.items()}
        self._binding = self.session.io_binding()
        for k, v in self._in.items():
            self._binding.bind_ortvalue_input(k, v)
        for k in self._out:
            self._binding.bind_ortvalue_output(k, self._out[k])
        self._run_options = ort.RunOptions()
        self._abandon = threading.Event()  # set once a step is abandoned (``abandon``): no other step is taken
        self.step_limit_s: float | None = None  # a step running longer is abandoned (``ControlLoop`` sets it)
        register(self)  # a stop signal ends its running step (robot_wm.runtime.interrupt)
        if self.cuda_graph:
            self._run_options.add_run_config_entry("gpu_graph_id", "1")

    @property
    def goal(self) -> Goal | None:
        """The goal the next steps plan toward (None: not a goal-conditioned planner)."""
        if self.meta.goal is None:
            return None
        return Goal(self._host["goal"].copy(), self._host["goal_weights"].copy())

    def set_goal(self, state, weights=None) -> None:
        """Plan toward ``state`` (and ``weights``; None keeps the current ones) from the next step on, with
        no re-export. A goal that is not ``state_dim`` finite values (weights >= 0, one > 0) raises a
        ValueError naming it, and the previous goal stays in force."""
        if self.meta.goal is None:
            raise ValueError(f"{str(self.path)!r} is not a goal-conditioned planner (export it with a [goal] "
                             "in the run's config or a goal.* override)")
        with self._lock:
            goal = check_goal(state, self._host["goal_weights"] if weights is None else weights, self.meta.state_dim)
            self._host["goal"][...], self._host["goal_weights"][...] = goal

    def reset(self) -> None:
        """A new episode: the value guard (where the planner has one) trusts the value again, with nothing owed."""
        if self.meta.value_guard:
            with self._lock:
                self._host[GUARD_INPUT][...] = np.array(GUARD_INITIAL, np.float32)
                self._guard_before = None

    def discard_last_step(self) -> None:
        """The caller did not execute the last step's plan (the control loop rejected it: late, malformed, or the robot
        refused the command): the value guard forgets that plan, as it forgets one that fell back in the graph. Only
        the step just taken can be discarded; a second call changes nothing."""
        if self.meta.value_guard:
            with self._lock:
                if self._guard_before is not None:
                    self._host[GUARD_INPUT][...] = self._guard_before
                    self._guard_before = None

    @property
    def value_trusted(self) -> bool:
        """Whether the next step plans with the value (False while the value guard has switched it off)."""
        if not self.meta.value_guard:
            return True
        with self._lock:  # another thread's step writes the guard
            return bool(self._host[GUARD_INPUT][3] <= 0)

    def initial_plan(self) -> np.ndarray:
        """The warm start of an episode's first step: the middle of the action range."""
        mid = midpoint(self.meta.action_low, self.meta.action_high)
        return np.broadcast_to(mid, (self.meta.horizon, self.meta.action_dim)).astype(np.float32)

    def step(self, state: np.ndarray, prev_plan: np.ndarray) -> PlanResult:
        """One planning step. Raises ValueError on wrongly shaped inputs (non-finite values are
        the graph's business: it then reports valid=False and returns the shifted previous plan)."""
        state = as_floats(state, "state").reshape(-1)
        if state.shape != self._host["state"].shape:
            raise ValueError(f"state has {state.size} values, the planner expects {self.meta.state_dim}")
        plan = as_floats(prev_plan, "prev_plan")
        if plan.shape != self._host["prev_plan"].shape:  # a (1,) plan was broadcast over the whole horizon
            raise ValueError(f"prev_plan has shape {plan.shape}, the planner expects "
                             f"{self._host['prev_plan'].shape} (horizon, action_dim)")
        with self._lock:
            self._host["prev_plan"][...] = plan
            self._host["state"][...] = state
            if self.has_noise_input:
                self.rng.standard_normal(out=self._host["noise"], dtype=np.float32)
            if self.device == "cpu":
                pass  # the CPU OrtValues share memory with the host arrays
            else:
                for k, v in self._in.items():
                    v.update_inplace(self._host[k])
            self._run_options.terminate = False  # a stop signal or the warm-up's watchdog sets it (interrupt)
            self._run()
            o = {k: v.numpy() for k, v in self._out.items()}
            if self.meta.value_guard:  # carried to the next step, as the caller carries the plan
                self._guard_before = self._host[GUARD_INPUT].copy()
                self._host[GUARD_INPUT][...] = o[GUARD_OUTPUT]
            return PlanResult(o["action"].copy(), o["next_plan"].copy(), float(o["best_return"]),
                              float(o["spread"]), bool(o["valid"]))

    def why_invalid(self, state) -> str:
        """Why the graph reports ``valid=False`` for ``state``, as far as the file tells: the first dimension that is
        not finite, or beyond the states the model plans from (metadata ``state_reach``), else non-finite scores."""
        wide = as_floats(state, "state", np.float64).reshape(-1)
        if wide.size != self.meta.state_dim:  # numpy's broadcast error before (probe 20)
            return f"the state has {wide.size} values, the planner expects {self.meta.state_dim}"
        if (bad := np.flatnonzero(~np.isfinite(wide))).size:
            return f"state[{bad[0]}] = {wide[bad[0]]} is not finite ({bad.size} of {wide.size} dimensions)"
        with np.errstate(over="ignore"):
            s = wide.astype(np.float32)  # as the graph sees it
        if (big := np.flatnonzero(~np.isfinite(s))).size:  # 1e300 was called "inf, not finite" (probe 20)
            return (f"state[{big[0]}] = {wide[big[0]]:.6g} is beyond float32, the planner's input ({big.size} of "
                    f"{wide.size} dimensions): a unit error, an overflowed sensor or another robot")
        if self.meta.reach is None:
            return "a state beyond the model's reach, or non-finite scores (this planner file does not say which)"
        low, high = self.meta.reach
        if (out := np.flatnonzero((s < low) | (s > high))).size:
            j = out[0]
            return (f"state[{j}] = {s[j]:.6g} is beyond the model's reach [{low[j]:.6g}, {high[j]:.6g}] (far outside "
                    f"its training data; {out.size} of {s.size} dimensions): a unit error, an overflowed sensor or "
                    "another robot")
        return "the model's scores were not finite (the state is within its reach)"

    def interrupt(self) -> None:
        """End the step onnxruntime is running now (between two nodes; the step raises). Any thread may call it."""
        self._run_options.terminate = True

    def abandon(self) -> None:
        """End the step now, in the thread that waits for it (``StepAbandoned``), however long the node onnxruntime
        runs; the run goes on by itself, and the session takes no other step. Any thread may call it."""
        self.interrupt()
        self._abandon.set()

    def _run(self) -> None:
        """onnxruntime's run of the bound step, in a thread of its own while the caller's thread waits: onnxruntime ends
        a step between two nodes only, and one node of a forged graph (a product of two 16,384 x 16,384 tensors, its
        declared work raised to match) held SIGTERM back 152 s with no safe action sent (probe 41). A stop handler (on
        the main thread) runs at once, and ``abandon`` (from any thread: a loop run off the main thread waited 2 s,
        probe 42) or ``step_limit_s`` ends the wait; the run is left to end by itself."""
        if self._abandon.is_set():
            raise StepAbandoned(f"planner file {str(self.path)!r}: a step was abandoned while onnxruntime ran it; this "
                                "session takes no other step")
        limit = self.step_limit_s

        def check(waited_s: float) -> None:
            if self._abandon.is_set():
                raise StepAbandoned(f"planner file {str(self.path)!r}: the planning step was abandoned while "
                                    "onnxruntime ran it")
            if limit is not None and waited_s > limit:  # a forged graph's steps of 1 to 3 s kept a stale command on
                # the robot 25 ticks, 69 s (probe 42)
                raise StepAbandoned(f"planner file {str(self.path)!r}: a planning step ran past {limit:g} s and was "
                                    "abandoned: the graph does far more than its metadata says, or this computer is "
                                    "far too slow for it")

        waited(lambda: self.session.run_with_iobinding(self._binding, self._run_options), "onnxruntime-step", 0.005,
               check, abandoned=self.abandon)  # (abandon: the session takes no other step, and the run ends between
        # two nodes where it can)

    def warmup(self, runs: int = 3) -> None:
        """Run a few steps before the loop (allocations, CUDA-graph capture, TensorRT engine build). A step that
        runs past ``WARMUP_LIMIT_S`` is ended and the file refused: a forged graph's step lasted minutes (probe 35)."""
        if isinstance(runs, bool) or not isinstance(runs, int | np.integer) or not 1 <= runs <= 1000:
            raise ValueError(f"runs={runs!r}: expected a whole number of warm-up steps from 1 to 1000")  # 0 ran 1 (36)
        with self._lock:  # another thread's steps between the save and the restore replayed its noise (probe 16)
            rng_state = self.rng.bit_generator.state
            guard = self._host[GUARD_INPUT].copy() if self.meta.value_guard else None
            plan = self.initial_plan()
            expired = threading.Event()
            period = self.meta.control_period
            # the first step may build (allocations, a TensorRT engine); the later ones run as the loop's will: 50
            # control periods at most (a step of 20 s made every tick an overrun of 20 s: probe 35)
            limits = [WARMUP_LIMIT_S, *[WARMUP_LIMIT_S if math.isnan(period) else max(5.0, 50 * period)] * (runs - 1)]
            watchdog, step_limit, self.step_limit_s = None, self.step_limit_s, None  # the watchdog's limits instead
            try:
                for limit in limits:
                    watchdog = threading.Timer(limit, lambda: (expired.set(), self.abandon()))
                    watchdog.daemon = True
                    watchdog.start()
                    self.step(np.zeros(self.meta.state_dim, np.float32), plan)
                    watchdog.cancel()
            except Exception as e:  # noqa: BLE001 -- onnxruntime's own types: a traceback before (probe 31)
                if expired.is_set():
                    raise ModelFileError(f"planner file {str(self.path)!r}: a planning step ran past {limit:g} s at "
                                         "warm-up and was ended: the graph does far more than its metadata says, or "
                                         "this computer is far too slow for it") from None
                from robot_wm.sysmem import memory_blamed

                first = _ort_words(e)
                blamed = memory_blamed(str(e))
                if blamed or "allocate" in str(e).lower():
                    why = blamed or "export it with fewer planner.samples or a shorter horizon"
                    raise ModelFileError(f"planner file {str(self.path)!r}: a planning step could not be allocated "
                                         f"(onnxruntime: {first}): {why}") from None
                raise ModelFileError(f"planner file {str(self.path)!r} fails when it runs (onnxruntime: {first}): its "
                                     "graph was edited or damaged after export; export the planner again") from None
            finally:
                self.step_limit_s = step_limit
                if watchdog is not None:
                    watchdog.cancel()
            self.rng.bit_generator.state = rng_state  # warm-up does not shift the seeded noise stream
            if guard is not None:  # nor leave its plans in the value guard (review)
                self._host[GUARD_INPUT][...] = guard
                self._guard_before = None


def _ort_words(e: Exception) -> str:
    """onnxruntime's message, its first line kept short: head and tail, since its reason comes last, after a C++
    signature (cut at 300 characters, the reason was lost: probe 35)."""
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return first if len(first) <= 300 else f"{first[:120]} ... {first[-180:]}"


def _has_external_data(proto) -> bool:
    """Whether an initializer or a node's tensor attribute (a Constant's value: onnxruntime printed its own error
    first, probe 36) points at external data, in the graph or its functions."""
    nodes = [*proto.graph.node, *(n for f in proto.functions for n in f.node)]
    tensors = [*proto.graph.initializer, *(a.t for n in nodes for a in n.attribute if a.HasField("t")),
               *(t for n in nodes for a in n.attribute for t in a.tensors)]
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors)


def _external_data(path: Path) -> ModelFileError:
    return ModelFileError(f"{str(path)!r} references external data; robot-wm only runs self-contained planner files "
                          "(export writes one)")


def _check_no_control_flow(proto, path: Path) -> None:
    """Refuse a node that runs a subgraph (Loop, Scan, If): a robot-wm planner has none, and a Loop of 10^8 trips,
    hashes recomputed, made one planning step last 86 s, deaf to SIGTERM (probe 31). A step is bounded by its
    graph's size only where nothing in it repeats. The model's local functions are looked into too: a Loop inside
    one, called from the graph, passed (probe 34)."""
    for where, nodes in (("graph", proto.graph.node), *((f"function {f.domain}.{f.name}", f.node) for f in proto.functions)):
        for node in nodes:
            if node.op_type in ("Loop", "Scan", "If") or any(
                    a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
                raise ModelFileError(f"planner file {str(path)!r} holds a {node.op_type} node ({node.name or 'unnamed'}, "
                                     f"in its {where[:80]}), control flow that a robot-wm planner never has (a "
                                     "step could run without bound): the file was edited after export; export the "
                                     "planner again")


_MODEL_FIELDS = frozenset(f.number for f in onnx.ModelProto.DESCRIPTOR.fields)
_MODEL_FIELD_NAMES = {f.number: f.name for f in onnx.ModelProto.DESCRIPTOR.fields}
_WEIGHTY_FIELDS = frozenset(onnx.ModelProto.DESCRIPTOR.fields_by_name[k].number for k in ("graph", "metadata_props"))
MAX_DESCRIPTION_BYTES = 1 << 20
"""The most a planner file holds outside its graph and metadata (producer, doc_string, opsets, functions, ...)."""
MAX_METADATA_BYTES = 1 << 20
"""The most a planner file's metadata holds (an export writes a few KiB: the shapes, bounds, settings and hashes)."""
_METADATA_FIELD = onnx.ModelProto.DESCRIPTOR.fields_by_name["metadata_props"].number


def _check_no_foreign_field(path: Path) -> None:
    """Refuse a file whose top level holds a field an ONNX model does not define, found by walking the protobuf
    wire format (mapped, nothing parsed): a 0.8 MB planner padded with a 1.9 GB unknown field passed every check and
    took 6 GB to deploy, read, parsed by onnx and again by onnxruntime (probe 29). Malformed data is left to the parser."""
    import mmap

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[:1] != b"\x08":  # not an ONNX model's start (its ir_version): a zip, a text, ... named later
                return
            i, n, other, meta = 0, len(buf), 0, 0
            while i < n:
                tag, i = _varint(buf, i)
                if tag is None:
                    return
                field, wire, start = tag >> 3, tag & 7, i
                if wire == 0:
                    _, i = _varint(buf, i)
                elif wire == 2:
                    length, i = _varint(buf, i)
                    i = None if length is None else i + length
                else:  # fixed 64- and 32-bit; groups (3, 4) are no part of ONNX: the parser names them
                    i = {1: i + 8, 5: i + 4}.get(wire)
                if i is None or i > n:
                    return
                if field not in _MODEL_FIELDS:
                    raise ModelFileError(f"planner file {str(path)!r} holds a field (number {field}, {i - start:,} bytes) "
                                         "that an ONNX model does not have: it was padded or damaged after export; "
                                         "export the planner again")
                if field == _METADATA_FIELD:
                    meta += i - start
                    if meta > MAX_METADATA_BYTES:  # a 300 MiB entry, its hash recomputed, took 1.75 GB (probe 34)
                        raise ModelFileError(f"planner file {str(path)!r} holds more than {MAX_METADATA_BYTES >> 20} MiB "
                                             "of metadata (an export writes a few KiB): it was padded after export; "
                                             "export the planner again")
                if field not in _WEIGHTY_FIELDS:
                    other += i - start
                    if other > MAX_DESCRIPTION_BYTES:  # a 300 MiB doc_string took 1.7 GB to deploy (probe 32)
                        raise ModelFileError(f"planner file {str(path)!r} holds more than {MAX_DESCRIPTION_BYTES >> 20} "
                                             f"MiB outside its graph and metadata (up to field "
                                             f"{_MODEL_FIELD_NAMES[field]!r}): a planner "
                                             "file's descriptions are short; it was padded after export; export the "
                                             "planner again")


def _varint(buf, i: int) -> tuple[int | None, int | None]:
    """The protobuf varint at ``buf[i]`` and the index after it; (None, None) where none ends within 10 bytes."""
    value = 0
    for shift in range(0, 70, 7):
        if i >= len(buf):
            break
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
    return None, None


def _is_run(path: Path) -> bool:
    from robot_wm.run_dir import RunDir  # on the error path alone: the runtime imports no training code

    return RunDir(path).is_run()


def _looks_like_toml(blob: bytes) -> bool:
    """Whether a would-be planner file is a TOML text (a launch file): it parses as one, with at least one key."""
    import tomllib

    try:
        return bool(tomllib.loads(blob[:1 << 20].decode("utf-8")))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return False
