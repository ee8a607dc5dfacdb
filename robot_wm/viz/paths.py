"""Entity paths and timelines of a robot-wm Rerun recording (the logger, the default blueprint and
the read-back check all use these names)."""

STEP = "step"        # global control step, across episodes (the main timeline)
EPISODE = "episode"  # episode index
EPOCH = "epoch"      # global training epoch, across rounds

WORLD = "world"
ROBOT_BODIES = "world/robot/bodies"        # Points3D: body centres of mass, every control step
ROBOT_SKELETON = "world/robot/skeleton"    # LineStrips3D: the pose, every control step
GHOSTS = "world/ghosts/elites"             # LineStrips3D: K best sequences x B bodies, H+1 points each
GHOST_POSES = "world/ghosts/elite_poses"   # Points3D: every ghost's bodies at the end of the horizon
CHOSEN = "world/ghosts/chosen"             # LineStrips3D: the chosen plan, B bodies x (H+1)
CHOSEN_POSE = "world/ghosts/chosen_pose"   # LineStrips3D: skeleton at the end of the chosen plan
MEMBERS = "world/ghosts/members"           # LineStrips3D: each ensemble member's chosen-plan rollout
PROPOSALS = "world/ghosts/proposals"       # LineStrips3D: policy proposals (with a value), B bodies x (H+1)

CAMERA = "camera"
CAMERA_RGB = "camera/rgb"

STATE_ACTUAL = "plots/state/actual"
STATE_PRED = "plots/state/predicted"
STATE_UPPER = "plots/state/predicted_upper"   # mean + std over ensemble members
STATE_LOWER = "plots/state/predicted_lower"   # mean - std
ACTION = "plots/action"
REWARD = "plots/reward"
RETURN_PRED = "plots/return/predicted"        # imagined H-step reward of the plan executed (sum, mean of members)
RETURN_REAL = "plots/return/realised"         # the H-step reward that followed (sum)
PLAN_OBJECTIVE = "plots/plan/objective/total"            # the planner's objective of the plan executed
PLAN_REWARD = "plots/plan/objective/imagined_reward"     # its discounted imagined-reward part
PLAN_VALUE = "plots/plan/objective/terminal_value"       # its discount^H x V(last imagined state) part
PLAN_GOAL = "plots/plan/objective/goal_cost"             # its discounted distance to the goal (subtracted)
SPREAD = "plots/plan/return_spread"
SCORES = "plots/plan/scores"                  # min / p25 / median / p75 / max of sampled scores
SCORE_HIST = "plots/plan/score_histogram"     # BarChart of all sampled scores
GHOST_RETURNS = "plots/plan/ghost_returns"    # predicted return of each drawn ghost
LATENCY = "plots/timing/plan_ms"
LOG_COST = "plots/timing/log_ms"

TRAIN_NLL = "train/nll"                 # per member, per epoch
TRAIN_VAL = "train/val_mse"             # per member, per epoch
TRAIN_ROUND_VAL = "train/round_val_mse"  # per member, at the step the round finished
MULTISTEP = "train/multistep_mse"       # BarChart: error vs horizon after each round
MULTISTEP_SERIES = "train/multistep_mse_by_round"

EVENTS = "events"
