"""The typed config tree: launch-file round trips, errors that name the field, overrides, --help."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from robot_wm import config as cfgmod
from robot_wm.cli import build_parser
from robot_wm.config import ConfigError, RunConfig, apply_overrides, from_dict
from sim.registry import task_names

LAUNCH_FILES = sorted((Path(__file__).resolve().parents[1] / "launch").glob("*.toml"))


def _leaf_fields(model: type[BaseModel] = RunConfig, prefix: str = ""):
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _leaf_fields(ann, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def _custom() -> RunConfig:
    return apply_overrides(RunConfig(), [
        "seed=7", "run_dir=somewhere/{task}", "env_steps=1234", "env.task=cheetah-run", "env.action_repeat=4",
        "env.max_env_steps=500", "model.hidden=64", "model.lr=0.01", "planner.optimizer=mppi",
        "planner.horizon=20", "planner.temperature=2", "planner.uncertainty_weight=-0.5",
    ])


def test_launch_file_round_trip(tmp_path):
    cfg = _custom()
    assert cfg != RunConfig()
    path = tmp_path / "launch.toml"
    cfgmod.save(cfg, path)
    loaded = cfgmod.load(path)
    assert loaded == cfg
    assert loaded.model_dump() == cfg.model_dump()
    # And the default config round-trips too (None fields are left out of the file and come back as None).
    cfgmod.save(RunConfig(), path)
    assert cfgmod.load(path) == RunConfig()
    assert not list(tmp_path.glob("*.tmp")), "atomic save left a temp file behind"


@pytest.mark.parametrize("data, key", [
    ({"planner": {"horizn": 3}}, "planner.horizn"),
    ({"seeed": 1}, "seeed"),
    ({"env": {"task": "cartpole-swingup", "colour": "red"}}, "env.colour"),
])
def test_unknown_key_is_named(data, key, tmp_path):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(data)
    # The same through a launch file on disk: the error names the file too.
    path = tmp_path / "bad.toml"
    section, _, leaf = key.rpartition(".")
    value = data[section][leaf] if section else data[leaf]
    path.write_text((f"[{section}]\n" if section else "") + f"{leaf} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError) as err:
        cfgmod.load(path)
    assert key in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("data, key", [
    ({"planner": {"horizon": "15"}}, "planner.horizon"),
    ({"planner": {"horizon": 1.5}}, "planner.horizon"),
    ({"env": {"action_repeat": True}}, "env.action_repeat"),
    ({"model": {"lr": "fast"}}, "model.lr"),
    ({"seed": [1]}, "seed"),
    ({"planner": {"optimizer": "adam"}}, "planner.optimizer"),
])
def test_wrong_type_names_the_field(data, key):
    with pytest.raises(ConfigError) as err:
        from_dict(data)
    assert key in str(err.value)


@pytest.mark.parametrize("override, key", [
    ("planner.horizon=-1", "planner.horizon"),
    ("planner.samples=0", "planner.samples"),
    ("planner.elites=500", "elites"),
    ("model.elites=9", "elites"),
    ("env.action_repeat=0", "env.action_repeat"),
    ("model.val_fraction=0.95", "model.val_fraction"),
    ("model.val_fraction=0", "model.val_fraction"),  # probe 14: validated on the training data, silently
    ("planner.discount=1.5", "planner.discount"),
    ("planner.uncertainty_weight=nan", "planner.uncertainty_weight"),  # NaN would disable planning silently
    ("model.lr=inf", "model.lr"),
    ("model.activation=tanh", "model.activation"),
    ("goal.reward_weight=1e308", "goal.reward_weight"),  # every planning step was invalid, exit 0
    # the eighth probe: diverged training blamed on the learning rate; every planning step fell back
    ("model.weight_decay=1e308", "model.weight_decay"),
    ("value.entropy_coef=1e308", "value.entropy_coef"),
    ("env.randomize.obs_noise=1e30", "env.randomize.obs_noise"),
    # probe 14: a NaN noise filter made every planning step fall back (eval exit 0, return 0.1); 100,000
    # iterations traced for minutes before anything was written
    ("planner.noise_beta=1000", "planner.noise_beta"),
    ("env.max_env_steps=1000000000", "env.max_env_steps"),  # an MJCF robot's first episode never ended
    ("planner.iterations=100000", "planner.iterations"),
    # probe 23: budgets no run ends within were accepted
    ("env_steps=1000000000000000000000", "env_steps"),
    ("eval_episodes=1000000000", "eval_episodes"),
    ("seed_episodes=1000000000", "seed_episodes"),
])
def test_impossible_values_are_errors(override, key):
    with pytest.raises(ConfigError) as err:
        apply_overrides(RunConfig(), [override])
    assert key in str(err.value)


def test_a_doubled_equals_sign_is_an_error_not_a_folder_named_equals():
    """``run run_dir==/tmp/x`` created './=/tmp/x' in the working directory and started a run (probe 2026-11-26)."""
    with pytest.raises(ConfigError, match=re.escape("override 'run_dir==/tmp/x' has '==': expected run_dir=/tmp/x")):
        apply_overrides(RunConfig(), ["run_dir==/tmp/x"])
    assert apply_overrides(RunConfig(), ['run_dir="=x"']).run_dir == "=x"  # quoted, it is the user's choice


def test_a_table_or_array_that_is_not_toml_says_why():
    """goal.joints={slider=0.5,slider=0.6} was taken as a string, then "should be a valid dictionary"."""
    with pytest.raises(ConfigError, match=r"override 'goal.joints=\{slider=0.5,slider=0.6\}': .*Duplicate inline table key"):
        apply_overrides(RunConfig(), ["goal.joints={slider=0.5,slider=0.6}"])


def test_repeated_evaluation_budgets_are_one_budget():
    """eval_at=[100, 100, 100, 100] ran four evaluations of one model (probe of 2026-11-26)."""
    assert apply_overrides(RunConfig(), ["eval_at=[300, 100, 100, 100, 100]"]).eval_at == [100, 300]


def test_elites_must_fit_samples():
    with pytest.raises(ConfigError, match="elites=20 exceeds samples=10"):
        apply_overrides(RunConfig(), ["planner.samples=10", "planner.elites=20", "planner.keep_elites=2"])
    ok = apply_overrides(RunConfig(), ["planner.samples=10", "planner.elites=5", "planner.keep_elites=2"])
    assert (ok.planner.samples, ok.planner.elites) == (10, 5)


def test_overrides_parse_with_types():
    base = RunConfig()
    cfg = apply_overrides(base, ["planner.horizon=20", "planner.temperature=1", "env.task=cheetah-run",
                                 "env.max_env_steps=500", "seed=3", "model.lr=3e-4", 'run_dir="a b/{seed}"'])
    assert cfg.planner.horizon == 20 and type(cfg.planner.horizon) is int
    assert cfg.planner.temperature == 1.0 and type(cfg.planner.temperature) is float
    assert cfg.env.task == "cheetah-run"
    assert cfg.env.max_env_steps == 500 and cfg.seed == 3 and cfg.model.lr == 3e-4
    assert cfg.resolved_run_dir() == Path("a b/3")
    # a width written with leading zeros is that width (the eighth probe: {seed:0003d} was "over 999")
    assert apply_overrides(base, ["seed=3", 'run_dir="r/{seed:0003d}"']).resolved_run_dir() == Path("r/003")
    with pytest.raises(ConfigError, match="width or precision over 999"):
        apply_overrides(base, ['run_dir="r/{seed:01000d}"'])
    # probe 34: {seed:c} made seed 47 a '/', 10 a newline; a fill character is any character too
    for spec in ("c", "/>5", "x", ",d"):
        with pytest.raises(ConfigError, match=re.escape(f"the format {{seed:{spec}}} is not a width, a precision")):
            apply_overrides(base, [f'run_dir="r/{{seed:{spec}}}"'])
    assert apply_overrides(base, ["seed=3", 'run_dir="r/{task:>20s}-{seed:>4}"']).resolved_run_dir() == \
        Path("r/    cartpole-swingup-   3")
    # probe 34: 119,999 budgets were echoed whole in the refusal (849 KB)
    with pytest.raises(ConfigError) as err:
        apply_overrides(base, ["eval_at=" + str(list(range(1, 20_000)))])
    assert "at most 10000 items" in str(err.value) and len(str(err.value)) < 400, len(str(err.value))
    assert base == RunConfig(), "overrides must not modify the config they start from"
    # Later overrides win.
    assert apply_overrides(base, ["planner.horizon=20", "planner.horizon=7"]).planner.horizon == 7


@pytest.mark.parametrize("override, needle", [
    ("planner.horizon", "key=value"),
    ("planner.nope=1", "planner.nope"),
    ("nosection.horizon=1", "nosection"),
    ("planner.horizon=abc", "planner.horizon"),
])
def test_bad_overrides_name_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        apply_overrides(RunConfig(), [override])
    assert needle in str(err.value)


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="missing.toml"):
        cfgmod.load(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[planner\nhorizon = ")
    with pytest.raises(ConfigError, match="broken.toml"):
        cfgmod.load(broken)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_every_launch_file_loads(path, tmp_path):
    cfg = cfgmod.load(path)
    assert cfg.env.task in task_names(), f"{path.name}: unknown task {cfg.env.task!r}"
    copy = tmp_path / path.name
    cfgmod.save(cfg, copy)
    assert cfgmod.load(copy) == cfg


def test_run_help_lists_every_field_with_its_docstring():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["run"].format_help()
    fields = list(_leaf_fields())
    assert len(fields) > 30
    for name, field in fields:
        assert field.description, f"config field {name} has no docstring"
        assert f"{name}=" in text, f"{name} missing from `robot-wm run --help`"
        doc = " ".join(field.description.split())  # shown on the field's one line
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(f"{name}=")), "")
        assert doc in line, f"docstring of {name} missing from its line in `robot-wm run --help`"


def test_every_default_the_help_shows_can_be_given_back():
    """`run --help` shows env.max_env_steps=None, and `env.max_env_steps=None` was "Input should be a valid integer"
    (probe 28): every field's help line, given back as an override, is accepted and keeps the default."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    shown = [ln.strip().split("  ")[0] for ln in sub.choices["run"].format_help().splitlines()
             if re.match(r"^\s+[a-z_.]+=\S", ln)]
    defaults = cfgmod.flat(RunConfig())
    assert {s.partition("=")[0] for s in shown} == set(defaults) and "env.max_env_steps=None" in shown
    assert cfgmod.flat(apply_overrides(RunConfig(), shown)) == defaults
    assert apply_overrides(RunConfig(), ["value.discount=0.9", "value.discount=None"]).value.discount is None


def test_run_help_via_main(capsys):
    from robot_wm.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"planner.horizon={RunConfig().planner.horizon}" in out
    assert RunConfig.model_fields["seed"].description in out


@pytest.mark.parametrize("args", [
    ["deploy", "p.onnx", "--record", ""], ["finetune", "RUN", "--data", " "], ["dream", "RUN", "--data", ""],
    ["dream", "RUN", "--out", ""], ["drive", "RUN", "--rrd", ""], ["export", "RUN", "--out", ""],
    ["whatif", "RUN", "--actions", ""], ["report", "S", "--anchors", ""], ["sweep", "s.toml", "--storage", ""],
])
def test_an_empty_path_flag_is_an_unset_variable_not_the_working_directory(args, capsys):
    """`deploy --record ''` ran, recorded nothing and exited 0; `finetune --data ''` imported the recordings lying
    in the working directory (probe 11)."""
    from robot_wm.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and "an empty path" in capsys.readouterr().err


def test_a_run_dir_that_is_not_utf8_text_is_named(tmp_path):
    """Probe 14: run_dir=bad<0xff>name failed with "'utf-8' codec can't encode character '\\udcff'", naming nothing,
    after writing .lock and manifest.json; --resume and collect failed the same way."""
    name = os.fsdecode(b"bad\xffname")  # what the command line gives Python for that byte
    with pytest.raises(ConfigError, match=r"run_dir '.*bad\\xffname' holds the byte\(s\) b'\\xff', which are not UTF-8"):
        apply_overrides(RunConfig(), [f"run_dir={tmp_path / name}"])
    assert not any(tmp_path.iterdir())


def test_a_run_saved_with_a_value_outside_tightened_limits_says_how_to_go_on(tmp_path):
    """Review of probe 14's fixes: model.val_fraction=0 (allowed before 2026-11-27) in a run's config.toml made every
    command on the run fail with the bound alone; the message now says how to go on."""
    from robot_wm.run_dir import RunDir

    cfg = apply_overrides(RunConfig(), [f"run_dir={tmp_path}"])
    run = RunDir(tmp_path)
    run.save_config(cfg)
    text = (tmp_path / "config.toml").read_text().replace("val_fraction = 0.15", "val_fraction = 0.0")
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"(?s)model.val_fraction.*accepted other values of model.val_fraction "
                                          r"before 2026-11-27; to go on with this run, set it within the limits"):
        run.load_config()


def test_numpy_numbers_build_a_config_and_numpy_booleans_do_not():
    """`EnvConfig(action_repeat=np.int64(8))` was a raw pydantic 'not a valid integer' (probe 19): numpy numbers are
    taken as the Python numbers they hold; a numpy boolean is still no number."""
    import numpy as np
    import pydantic

    from robot_wm.config import EnvConfig, PlannerConfig

    assert EnvConfig(task="cartpole-swingup", action_repeat=np.int64(4)).action_repeat == 4
    assert type(PlannerConfig(temperature=np.float32(0.25)).temperature) is float
    with pytest.raises(pydantic.ValidationError, match="action_repeat"):
        EnvConfig(action_repeat=np.bool_(True))
    # in lists and arrays, and on assignment; a complex number refused (its imaginary part dropped: probe 20)
    from robot_wm.config import ModelConfig, RandomizeConfig

    assert RandomizeConfig(action_delay=[np.int64(0), np.int64(1)]).action_delay == (0, 1)
    assert RandomizeConfig(mass=np.array([0.7, 1.3])).mass == (0.7, 1.3)
    env = EnvConfig()
    env.action_repeat = np.int64(4)
    assert type(env.action_repeat) is int and env.action_repeat == 4
    with pytest.raises(pydantic.ValidationError, match="is complex: expected a real number"):
        ModelConfig(lr=np.complex128(1e-3 + 7j))


def test_an_override_nested_too_deep_is_one_line_naming_it():
    """Probe 22: `eval RUN goal.state=[[[...3000 deep]]]` (and `deploy --sim`, a sweep file's overrides) ended in a
    RecursionError traceback, where a launch file nested as deep was refused in a line."""
    deep = "[" * 3000 + "]" * 3000
    with pytest.raises(cfgmod.ConfigError, match=r"override 'goal\.state=\[\[.*\.\.\. \(6,011 characters\)': a value "
                                                  r"nested 3000 deep is too deep"):
        cfgmod.apply_overrides(cfgmod.RunConfig(), [f"goal.state={deep}"])


def test_a_run_dir_the_file_system_cannot_hold_is_a_sentence(capsys):
    """Probe 29: `run run_dir=/proc/self/x` printed the OS's raw "[Errno 2] No such file or directory"."""
    from robot_wm.cli import main

    assert main(["run", "run_dir=/proc/self/x", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot make or open '/proc/self/x' (No such file or directory)" in err and "[Errno" not in err, err


@pytest.mark.parametrize("args", [["drive", "RUN", "--serve", ""], ["eval", "RUN", "--rerun", "serve", "--rerun-address", " "]])
def test_an_empty_address_flag_is_an_unset_variable(args, capsys):
    """`drive --serve ""` drove with no stream and no word, where every empty path was refused (probe 37)."""
    from robot_wm.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and "an empty address" in capsys.readouterr().err
