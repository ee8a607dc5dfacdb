"""The policy interface every controller implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Policy(Protocol):
    name: str

    def reset(self) -> None:
        """Forget any plan from the previous episode."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action for the current observation, always within the action bounds."""
