"""Model merging: the elementwise mean exactly, dtype and tied weights kept, clear refusals."""

import pytest
import torch
from safetensors.torch import load_file

from mirrorl.cli import main
from mirrorl.long2short.merge import MergeError, merge_models
from mirrorl.models.loading import load_policy
from mirrorl.models.tiny import create_tiny_model


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    return (create_tiny_model(root / "a", hidden_size=32, num_layers=2, num_heads=2, seed=1),
            create_tiny_model(root / "b", hidden_size=32, num_layers=2, num_heads=2, seed=2))


def test_merge_is_the_elementwise_mean_and_keeps_tied_weights(two_models, tmp_path):
    a, b = two_models
    out = merge_models(a, b, tmp_path / "c", weight=0.5)
    ta, tb, tc = (load_file(p / "model.safetensors") for p in (a, b, out))
    assert set(tc) == set(ta)
    for name in ta:
        assert torch.equal(tc[name], (ta[name] + tb[name]) / 2), name
    model, tokenizer = load_policy(out)  # loads as a normal checkpoint, head still tied to the embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert torch.equal(model.model.embed_tokens.weight, tc["model.embed_tokens.weight"])
    assert tokenizer("1+2")["input_ids"]


def test_merge_weights_and_dtype(two_models, tmp_path):
    a, b = two_models
    only_a = load_file(merge_models(a, b, tmp_path / "w0", 0.0) / "model.safetensors")
    assert all(torch.equal(t, load_file(a / "model.safetensors")[n]) for n, t in only_a.items())
    for name, path in (("a16", a), ("b16", b)):
        model, tok = load_policy(path, dtype="bfloat16")
        model.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    merged = load_file(merge_models(tmp_path / "a16", tmp_path / "b16", tmp_path / "c16", 0.25) / "model.safetensors")
    x, y = load_file(tmp_path / "a16" / "model.safetensors"), load_file(tmp_path / "b16" / "model.safetensors")
    name = "model.layers.0.mlp.up_proj.weight"
    assert merged[name].dtype == torch.bfloat16
    assert torch.equal(merged[name], (0.75 * x[name].float() + 0.25 * y[name].float()).bfloat16())


def test_merge_refuses_different_architectures(two_models, tmp_path, capsys):
    a, _ = two_models
    deeper = create_tiny_model(tmp_path / "deeper", hidden_size=32, num_layers=3, num_heads=2)
    with pytest.raises(MergeError, match="num_hidden_layers is 2 vs 3"):
        merge_models(a, deeper, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["merge", str(a), str(deeper), "--out", str(tmp_path / "out")]) == 2
    assert "different architectures" in capsys.readouterr().err
    with pytest.raises(MergeError, match="no config.json"):
        merge_models(a, tmp_path, tmp_path / "out")


def test_merge_command(two_models, tmp_path):
    a, b = two_models
    assert main(["merge", str(a), str(b), "--weight", "0.5", "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "config.json").is_file() and (tmp_path / "c" / "tokenizer.json").is_file()
