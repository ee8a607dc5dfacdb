"""Visual debugging in Rerun: see what the robot imagined.

``RerunLogger`` (torch-free) logs numpy arrays; ``RerunObserver`` hooks it into a run;
``read_rrd``/``check_rrd`` read a recording back. Importing this package imports nothing heavy.
"""

from __future__ import annotations

__all__ = ["RerunLogger", "RerunObserver", "QposDecoder", "BodyKinematics", "read_rrd", "check_rrd"]


def __getattr__(name: str):
    if name == "RerunLogger":
        from robot_wm.viz.logger import RerunLogger
        return RerunLogger
    if name == "RerunObserver":
        from robot_wm.viz.observer import RerunObserver
        return RerunObserver
    if name in ("QposDecoder", "BodyKinematics"):
        from robot_wm.viz import kinematics
        return getattr(kinematics, name)
    if name in ("read_rrd", "check_rrd"):
        from robot_wm.viz import readback
        return getattr(readback, name)
    raise AttributeError(name)
