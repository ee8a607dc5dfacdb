"""Planning latency per control step, side by side in one run: torch eager, torch.compile and
onnxruntime CPU (all running the same ``plan_step``), plus the planner's achieved model FLOP/s as a
fraction of this machine's batched-matmul rate at the same shapes.

    .venv/bin/python bench/bench_planner_latency.py [--steps 20] [--rounds 3] [--threads 2] [key=value ...]
    python bench/bench_planner_latency.py --device cuda [...]   # on a GPU: eager, compile, CUDA graphs

With ``--device cuda`` the torch backends run on the GPU and each timed step includes what a robot
pays: the state copied in, the step, and the action and next plan copied back to the host. onnxruntime
runs on CUDA too when its build has the CUDA provider (onnxruntime-gpu with its CUDA libraries).

Sizes come from the config (``RunConfig`` defaults, a run directory's config with ``--run``, plus
key=value overrides), read at run time. Weights are random unless ``--run`` names a trained run:
latency does not depend on them.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # like ORT allow_spinning=0: no busy-wait on a shared CPU

import argparse
import json
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.mpc.guard import initial_guard
from policies.mpc.planner import PlanStep, learned_score
from policies.mpc.step import StepSpec, initial_plan
from robot_wm import config as cfgmod
from robot_wm.export.onnx_export import export_planner, model_flops
from robot_wm.model.folded import planning_dims
from robot_wm.model.value import new_value
from robot_wm.runtime.session import PlannerSession


def _stats(xs: list[float]) -> dict:
    ms = np.array(xs) * 1e3
    return {"min": float(ms.min()), "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max()), "n": len(ms)}


def time_steps(fn, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _layer_shapes(model, spec: StepSpec):
    dims = planning_dims(model.spec)
    e, n = model.members, spec.samples
    return e, n, dims, sum(2 * e * n * i * o for i, o in pairwise(dims))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_rate_torch(model, spec: StepSpec, rounds: int = 50, device: str = "cpu") -> float:
    """FLOP/s of the model's layer matmuls alone (bias included, batched over members, N = samples
    rows): the shapes a planning step runs, torch ``baddbmm`` on the same threads (or GPU), best round."""
    e, n, dims, flops = _layer_shapes(model, spec)
    xs = [torch.randn(e, n, i, device=device) for i in dims[:-1]]
    ws = [torch.randn(e, i, o, device=device) for i, o in pairwise(dims)]
    bs = [torch.randn(e, 1, o, device=device) for o in dims[1:]]
    best = float("inf")
    with torch.inference_mode():
        for _ in range(rounds):
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(5):
                for x, w, b in zip(xs, ws, bs, strict=True):
                    torch.baddbmm(b, x, w)
            _sync(device)
            best = min(best, (time.perf_counter() - t0) / 5)
    return flops / best


def matmul_rate_ort(model, spec: StepSpec, threads: int, rounds: int = 50) -> float:
    """The same batched matmuls as one onnxruntime graph (MatMul chain), best round."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from robot_wm.runtime.session import session_options

    e, n, dims, flops = _layer_shapes(model, spec)
    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "x"
    for k, (i, o) in enumerate(pairwise(dims)):
        w = (rng.standard_normal((e, i, o)) / np.sqrt(i)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{k}"], [f"h{k}"]))
        prev = f"h{k}"
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [e, n, dims[0]])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [e, n, dims[-1]])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(m)
    sess = ort.InferenceSession(m.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((e, n, dims[0])).astype(np.float32)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(5):
            sess.run(None, {"x": x})
        best = min(best, (time.perf_counter() - t0) / 5)
    return flops / best


def cuda_backends(step: PlanStep, spec: StepSpec, adim: int, state: np.ndarray, plan: np.ndarray,
                  compile: bool) -> dict:
    """The torch backends on the GPU; each call copies the state in and the action and plan out."""
    dev = torch.device("cuda")
    step = step.to(dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    s_host, p_host = torch.from_numpy(state).pin_memory(), torch.from_numpy(plan).pin_memory()

    def on_gpu(fn):
        def run():
            with torch.inference_mode():
                out = fn(s_host.to(dev, non_blocking=True), p_host.to(dev, non_blocking=True),
                         torch.randn(spec.noise_shape(adim), generator=gen, device=dev))
                out.action.cpu(), out.next_plan.cpu()  # the host needs them: this waits for the GPU
        return run

    backends = {"torch eager CUDA": on_gpu(step)}
    if compile:
        for mode, label in (("default", "torch.compile CUDA"), ("reduce-overhead", "torch.compile CUDA graphs")):
            compiled = torch.compile(step, dynamic=False, mode=mode)
            t0 = time.perf_counter()
            for _ in range(3):  # CUDA-graph trees record on a later call than the first
                on_gpu(compiled)()
            print(f"  {label}: compiled in {time.perf_counter() - t0:.0f} s", flush=True)
            backends[label] = on_gpu(compiled)
    return backends


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--run", help="run directory whose model and config to use")
    p.add_argument("--steps", type=int, default=20, help="timed planning steps per backend and round")
    p.add_argument("--rounds", type=int, default=1, help="repeat every measurement; summary min/median/max")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where torch runs the step (onnxruntime: CPU, and CUDA when its build has the provider)")
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device")
    if a.run:
        from robot_wm.export.source import load_source

        src = load_source(a.run, a.overrides)
        cfg, model, value = src.cfg, src.model, src.value
    else:
        from robot_wm.train import new_model
        from sim.registry import make_env

        cfg = cfgmod.apply_overrides(cfgmod.RunConfig(), a.overrides)
        env = make_env(cfg.env)
        act = env.action_spec
        torch.manual_seed(0)
        model = new_model(env.observation_spec.dim, act.dim, act.low, act.high, cfg.model)
        model = model.subset(list(range(cfg.model.elites))).eval()
        value = (new_value(env.observation_spec.dim, act.dim, act.low, act.high, cfg.value, env.max_control_steps,
                           env.action_repeat).eval() if cfg.value.enabled else None)
    score, spec = learned_score(model, StepSpec.from_config(cfg.planner), value)
    flops = model_flops(model, spec, value)
    adim = model.spec.act_dim
    print(f"task {cfg.env.task}: {spec.optimizer} H={spec.horizon} N={spec.samples} I={spec.iterations}, "
          f"{model.members} members x {model.spec.layers}x{model.spec.hidden}; "
          + (f"value {value.spec.q_heads} Q heads x {value.spec.layers}x{value.spec.hidden} + "
             f"{spec.policy_samples} policy proposals; " if value is not None else "no value; ")
          + f"{flops / 1e9:.3f} GFLOP/step (value and policy counted); {a.threads} threads", flush=True)

    step = PlanStep(score, spec, model.action_low, model.action_high).eval()
    gen = torch.Generator().manual_seed(0)
    state = torch.randn(model.spec.obs_dim, generator=gen)
    plan = initial_plan(step.low, step.high, spec.horizon)
    s_np, p_np = state.numpy(), plan.numpy()
    warm = 2

    def torch_fn(fn):
        def run():
            with torch.inference_mode():
                fn(state, plan, torch.randn(spec.noise_shape(adim), generator=gen),
                   **({"guard": initial_guard()} if step.guarded else {}))  # a guarded step carries its guard
        return run

    backends = {"torch eager": torch_fn(step)} if a.device == "cpu" else {}
    if not a.no_compile and a.device == "cpu":
        compiled = torch.compile(step, dynamic=False)
        t0 = time.perf_counter()
        torch_fn(compiled)()
        print(f"  torch.compile: compiled in {time.perf_counter() - t0:.0f} s", flush=True)
        backends["torch.compile"] = torch_fn(compiled)
    tmp = tempfile.TemporaryDirectory()
    for noise in ("input", "internal"):
        path = Path(tmp.name) / f"planner_{noise}.onnx"
        export_planner(model, spec, path, noise=noise, value=value)
        sess = PlannerSession(path, provider="cpu", threads=a.threads)
        sess.warmup(warm)
        label = "onnxruntime CPU" + (" (noise input, numpy RNG)" if noise == "input" else " (in-graph RNG)")
        backends[label] = lambda s=sess: s.step(s_np, p_np)
        if a.device == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                print(f"  onnxruntime {ort.__version__} has no CUDA provider here "
                      f"({ort.get_available_providers()}): ONNX on CUDA not measured", flush=True)
            else:
                for graph in (False, True):
                    gpu = PlannerSession(path, provider="cuda", threads=a.threads, cuda_graph=graph)
                    gpu.warmup(warm)
                    backends[label.replace("CPU", "CUDA" + (" graph" if graph else ""))] = \
                        lambda s=gpu: s.step(s_np, p_np)
        if noise == "input" and a.threads > 1:  # one thread: less exposed to other processes
            one = PlannerSession(path, provider="cpu", threads=1)
            one.warmup(warm)
            backends["onnxruntime CPU (noise input, 1 thread)"] = lambda s=one: s.step(s_np, p_np)

    if a.device == "cuda":
        backends.update(cuda_backends(step, spec, adim, s_np, p_np, not a.no_compile))

    runs = []
    for r in range(a.rounds):
        mm_before = max(matmul_rate_torch(model, spec, device=a.device), matmul_rate_ort(model, spec, a.threads))
        results = {name: time_steps(fn, a.steps, warm) for name, fn in backends.items()}
        mm_torch = matmul_rate_torch(model, spec, device=a.device)
        mm_ort = matmul_rate_ort(model, spec, a.threads)
        mm = max(mm_before, mm_torch, mm_ort)  # the machine's batched-matmul rate: best seen, before and after
        rows = []
        print(f"\nround {r + 1}/{a.rounds}\n{'backend':<42} {'min ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
              f"{'Hz@p50':>8} {'GFLOP/s':>8} {'of mm@p50':>9} {'of mm@min':>9}")
        for name, xs in results.items():
            st = _stats(xs)
            rate, best = flops / (st["p50"] / 1e3), flops / (st["min"] / 1e3)
            rows.append({"backend": name, **st, "hz_p50": 1e3 / st["p50"], "gflops": rate / 1e9,
                         "matmul_fraction": rate / mm, "matmul_fraction_best": best / mm})
            print(f"{name:<42} {st['min']:8.2f} {st['p50']:8.2f} {st['p99']:8.2f} {st['max']:8.2f} "
                  f"{1e3 / st['p50']:8.1f} {rate / 1e9:8.1f} {rate / mm:9.0%} {best / mm:9.0%}")
        print(f"batched-matmul rate at the same shapes (best round, before/after): {mm / 1e9:.1f} GFLOP/s "
              f"(torch baddbmm {mm_torch / 1e9:.1f}, onnxruntime MatMul {mm_ort / 1e9:.1f} after)")
        runs.append({"matmul_gflops": mm / 1e9, "rows": rows})
    tmp.cleanup()

    def spread(key, name, fmt="{:.2f}"):
        v = [next(x[key] for x in run["rows"] if x["backend"] == name) for run in runs]
        return " / ".join(fmt.format(x) for x in (min(v), float(np.median(v)), max(v)))

    print(f"\nacross {a.rounds} rounds, min / median / max:\n{'backend':<42} {'p50 ms':>20} {'p99 ms':>20} "
          f"{'of matmul rate @p50':>20}")
    for name in backends:
        print(f"{name:<42} {spread('p50', name):>20} {spread('p99', name):>20} {spread('matmul_fraction', name, '{:.0%}'):>20}")
    ort = "onnxruntime CPU (noise input, numpy RNG)"
    p99 = [next(x["p99"] for x in run["rows"] if x["backend"] == ort) for run in runs]
    frac = [max(x["matmul_fraction"] for x in run["rows"] if x["backend"].startswith("onnx")) for run in runs]
    print(f"targets: onnxruntime p99 < 10 ms (100 Hz): {sum(v < 10 for v in p99)}/{len(p99)} rounds "
          f"(worst {max(p99):.2f} ms); >= 70% of the matmul rate at p50: {sum(f >= 0.7 for f in frac)}/{len(frac)} "
          f"rounds (lowest {min(frac):.0%})")
    if a.json:
        Path(a.json).write_text(json.dumps({"config": cfg.planner.model_dump(), "model": cfg.model.model_dump(),
                                            "flops_per_step": flops, "threads": a.threads, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
