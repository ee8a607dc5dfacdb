"""``Observer``: the hooks a run calls as it goes. The run (``runner.py``) calls them and the Rerun view
(``viz/observer.py``) implements them; both import this module and not each other."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from robot_wm.model.ensemble import WorldModel
    from sim.env import Env


class Observer:
    """Hooks a run calls as it goes (e.g. the Rerun logger). Every method is optional."""

    def on_episode_start(self, phase: str, index: int, env: Env, policy) -> None: ...
    def on_step(self, t: int, obs, action, reward: float, next_obs, policy) -> None: ...
    def on_episode_end(self, record: dict) -> None: ...
    def on_train(self, record: dict, model: WorldModel) -> None: ...
    def close(self) -> None: ...
