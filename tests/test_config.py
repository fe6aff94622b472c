from pathlib import Path

import pytest

from mirrorl.config import Config, ConfigError, load_config, save_config


def test_defaults_yaml_overrides_and_round_trip(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rl:\n  tau: 0.5\n  iterations: 7\ntask:\n  levels: [1, 2]\n")
    cfg = load_config(recipe, ["rl.iterations=9", "run.seed=3"])
    assert (cfg.rl.tau, cfg.rl.iterations, cfg.run.seed, cfg.task.levels) == (0.5, 9, 3, [1, 2])
    assert cfg.sft.lr == Config().sft.lr  # untouched defaults stay
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


@pytest.mark.parametrize("text, overrides, needle", [
    ("rl:\n  taux: 1\n", [], "rl.taux"),                       # unknown key, named
    ("rl:\n  tau: [1\n", [], "r.yaml"),                         # YAML syntax error names the file
    ("rl:\n  tau: abc\n", [], "rl.tau"),                        # wrong type
    ("", ["rl.tau=-1"], "rl.tau must be > 0"),                  # out of range
    ("", ["rl.samples_per_prompt=1"], "samples_per_prompt"),
    ("", ["run.precision=fp8"], "run.precision"),
    ("", ["rl.loss=ppo"], "rl.loss"),
    ("", ["rl.repeat_window_tokens=16"], "rl.repeat_max_period_tokens"),
    ("", ["rl.sampler=random"], "rl.sampler"),
    ("", ["rl.success_ema=1.5"], "rl.success_ema must be <= 1"),
    ("", ["rl.clip_eps=0"], "rl.clip_eps must be > 0"),
    ("", ["rl.minibatches=3"], "must divide"),
    ("", ["long2short.merge_weights=[0.5,1.5]"], "long2short.merge_weights must be"),
    ("", ["long2short.merge_weights=[]"], "long2short.merge_weights must be"),
    ("", ["justaword"], "section.key=value"),
])
def test_bad_config_names_file_and_key(tmp_path, text, overrides, needle):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace(".", r"\.")):
        load_config(recipe, overrides)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_demo_recipe_loads():
    from pathlib import Path
    cfg = load_config(Path(__file__).parents[1] / "configs" / "demo.yaml")
    assert cfg.rl.loss == "k15" and cfg.task.heldout_size >= 400


def test_long2short_rl_recipe_starts_with_the_length_penalty_on():
    root = Path(__file__).resolve().parents[1]
    short, demo = load_config(root / "configs" / "long2short_rl.yaml"), load_config(root / "configs" / "demo.yaml")
    assert short.rl.length_penalty_weight > 0 and short.rl.length_penalty_warmup == 0
    assert short.rl.max_response_tokens < demo.rl.max_response_tokens
    assert short.eval.max_response_tokens == short.rl.max_response_tokens


def test_vision_demo_recipe_loads():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo_vl.yaml")
    assert cfg.task.generated == "vision" and set(cfg.task.vision_tasks) == {"count", "compare", "read"}
    assert cfg.model.freeze_vision_tower and cfg.eval.max_response_tokens == cfg.rl.max_response_tokens


@pytest.mark.parametrize("override, needle", [("task.generated=audio", "task.generated must be one of"),
                                              ("task.vision_tasks=[count,paint]", "task.vision_tasks must be")])
def test_bad_vision_task_settings(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])
