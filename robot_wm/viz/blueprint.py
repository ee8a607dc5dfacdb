"""The default viewer layout: 3D scene with ghosts and the camera on the left; time series tabs
(control, planner, training) on the right."""

from __future__ import annotations

import rerun.blueprint as rrb

from robot_wm.viz import paths as P


def default_blueprint() -> rrb.Blueprint:
    scene = rrb.Spatial3DView(origin=P.WORLD, name="Robot + imagined futures")
    camera = rrb.Spatial2DView(origin=P.CAMERA, name="Camera")
    control = rrb.Vertical(
        rrb.TimeSeriesView(origin="plots/state", name="State: actual vs predicted (± ensemble std)"),
        rrb.TimeSeriesView(origin=P.ACTION, name="Chosen action"),
        rrb.TimeSeriesView(contents=[P.REWARD, "plots/return/**"], name="Reward; predicted vs realised return"),
        name="Control",
    )
    planner = rrb.Vertical(
        rrb.TimeSeriesView(origin="plots/plan/objective",
                           name="Plan executed: imagined reward, terminal value, goal cost"),
        rrb.TimeSeriesView(contents=[P.SCORES, P.GHOST_RETURNS, P.SPREAD], name="Sampled scores"),
        rrb.BarChartView(origin=P.SCORE_HIST, name="Score distribution (this step)"),
        rrb.TimeSeriesView(origin="plots/timing", name="Planning latency / logging cost (ms)"),
        name="Planner",
    )
    training = rrb.Vertical(
        rrb.TimeSeriesView(contents=[P.TRAIN_NLL, P.TRAIN_VAL], name="Loss per member (timeline: epoch)"),
        rrb.TimeSeriesView(contents=[P.TRAIN_ROUND_VAL, P.MULTISTEP_SERIES], name="Validation / multi-step error per round"),
        rrb.BarChartView(origin=P.MULTISTEP, name="Multi-step error vs horizon (latest round)"),
        name="Training",
    )
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Vertical(scene, camera, row_shares=[3, 2]),
            rrb.Tabs(control, planner, training, active_tab=0),
            column_shares=[3, 2],
        ),
        rrb.TimePanel(timeline=P.STEP, expanded=True, play_state="following"),
        rrb.SelectionPanel(expanded=False),
        rrb.BlueprintPanel(expanded=False),
    )
