"""The token-efficiency figure and table: one labelled point per model, from `mirrorl eval` too."""

import json

from mirrorl.cli import main
from mirrorl.eval.report import write_token_efficiency


def test_table_and_plot(tmp_path):
    png, md = write_token_efficiency(tmp_path, {"long": {"accuracy": 0.5, "mean_response_tokens": 200.0},
                                                "dpo": {"accuracy": 0.48, "mean_response_tokens": 120.0}}, 400)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md.read_text()
    assert "| long | 0.500 | 200.0 | +0% |" in text and "| dpo | 0.480 | 120.0 | -40% |" in text
    assert "400 held-out prompts" in text


def test_eval_command_writes_token_efficiency(tmp_path, tiny_model_dir):
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(out), "task.heldout_size=4",
                 "task.dev_size=4", "task.rl_prompts=8", "task.warmup_size=4", "eval.max_response_tokens=4"]) == 0
    models = json.loads((out / "eval.json").read_text())["models"]
    assert (out / "token_efficiency.png").is_file()
    assert f"| {tiny_model_dir} | {next(iter(models.values()))['accuracy']:.3f} |" in (out / "token_efficiency.md").read_text()
