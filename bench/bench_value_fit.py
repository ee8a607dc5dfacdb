"""How fast the value learns: TD updates from zero on a finished run's episodes, and the bias of Q
against the discounted Monte-Carlo return of the last episodes, every quarter of the updates.

    python bench/bench_value_fit.py RUN --updates 2000 [value.tau=0.05 value.n_step=3 ...]

The run's own config (plus the overrides) sets the value's sizes and hyperparameters. The bias is
measured on each of the last 4 episodes' first states (all but the last 40 steps, where the
truncated Monte-Carlo return is too short); a value that keeps up with a run needs it near 0
within the updates one run makes (``value.updates_per_step`` x control steps).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from robot_wm.config import apply_overrides
from robot_wm.model.value import new_value
from robot_wm.run_dir import RunDir
from robot_wm.train_value import TDData, train_value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. value.tau=0.05")
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rd = RunDir(a.run_dir)
    cfg = apply_overrides(rd.load_config(), a.overrides)
    eps = list(rd.dataset())
    ar = int(eps[0].meta.get("action_repeat", cfg.env.action_repeat))
    steps = max(len(e) for e in eps)
    ac = new_value(eps[0].obs.shape[1], eps[0].action.shape[1], -np.ones(eps[0].action.shape[1]),
                   np.ones(eps[0].action.shape[1]), cfg.value, steps, ar)
    g = ac.spec.discount
    rows = TDData.from_episodes(eps, cfg.value.n_step, g)
    t0 = time.perf_counter()
    for q in range(4):
        train_value(ac, rows, cfg.value, a.updates // 4, seed=q, progress=False)
        bias = []
        for ep in eps[-4:]:
            r, k = ep.reward.astype(np.float64), max(1, len(ep) - 40)
            ret = np.zeros(len(r))
            acc = 0.0
            for t in reversed(range(len(r))):
                acc = r[t] + g * acc
                ret[t] = acc
            with torch.no_grad():
                qv = ac.q_values(torch.as_tensor(ep.obs[:-1]), torch.as_tensor(ep.action)).mean(0).numpy()
            bias.append(float((qv[:k] - ret[:k]).mean()))
        print(f"updates {(q + 1) * (a.updates // 4):5d}: Q - MC return on the last 4 episodes "
              f"{' '.join(f'{b:+7.1f}' for b in bias)} (MC mean {ret[:k].mean():.1f}); {time.perf_counter() - t0:.1f} s",
              flush=True)


if __name__ == "__main__":
    main()
