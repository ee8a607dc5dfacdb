"""Export the MPC planning step (or the dynamics ensemble alone) as one self-contained ONNX file.

Importing this package is cheap; torch is imported only when an export actually runs.
"""

from robot_wm.export.format import DYNAMICS_FORMAT, PLANNER_FORMAT

__all__ = ["DYNAMICS_FORMAT", "PLANNER_FORMAT"]
