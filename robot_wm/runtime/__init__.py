"""Torch-free planner runtime: onnxruntime + numpy on the control path.

``PlannerSession`` runs an exported planner file; ``ControlLoop`` runs it at a fixed rate with a
deadline against any ``Robot`` (``SimRobot`` stands in for real hardware). Nothing here imports torch.
"""

from robot_wm.runtime.loop import ControlLoop, LoopStats
from robot_wm.runtime.robot import Robot, SimRobot
from robot_wm.runtime.session import ModelFileError, PlannerMeta, PlannerSession, ProviderError

__all__ = ["ControlLoop", "LoopStats", "ModelFileError", "PlannerMeta", "PlannerSession", "ProviderError",
           "Robot", "SimRobot"]
