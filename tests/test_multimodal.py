"""Vision-language policies: loading, image tensors in generation and log-probs, masking, a smoke RL run,
and rollouts with pictures on vLLM (skipped where vLLM or its LLaVA does not import)."""

import copy
import math

import pytest
import torch
from conftest import perturbed_policy

from mirrorl.config import load_config
from mirrorl.eval.evaluate import encode_problem
from mirrorl.models.loading import load_policy, load_processor
from mirrorl.models.multimodal import (PICTURE, collate, encode_image_prompt, freeze_vision_tower,
                                       merge_placeholder_runs)
from mirrorl.models.tiny_vl import IMAGE_TOKEN, create_tiny_vl_model
from mirrorl.rl import train_rl
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.sft import run_sft
from mirrorl.tasks.datasets import build_datasets
from mirrorl.tasks.vision import generate_vision, vision_trace
from mirrorl.trainer.logprobs import pad_batch, token_logprobs


@pytest.fixture(scope="module")
def vl_dir(tmp_path_factory):
    return create_tiny_vl_model(tmp_path_factory.mktemp("vl"), hidden_size=32, num_layers=2, num_heads=2,
                                vision_hidden_size=16, vision_layers=1)


@pytest.fixture(scope="module")
def vl(vl_dir):
    model, tokenizer = load_policy(vl_dir)
    return model.eval(), tokenizer, load_processor(vl_dir)


@pytest.fixture(scope="module")
def problems():
    return generate_vision(8, 0, (1, 2))  # count, compare, read (+ its text twin), ...


def test_vision_language_folders_load_through_the_auto_classes(vl, tiny_model_dir):
    model, tokenizer, processor = vl
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(processor.image_processor).__name__ == "CLIPImageProcessorPil"  # no torchvision needed
    assert tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) == model.config.image_token_id
    assert load_processor(tiny_model_dir) is None  # a text-only model has none


def test_image_prompt_holds_one_placeholder_per_patch(vl, problems):
    _, tokenizer, processor = vl
    ids, images = encode_image_prompt(processor, problems[0].prompt, problems[0].image)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert ids[:16] == [image_id] * 16 and image_id not in ids[16:]  # (64 / 16)^2 patches, CLS dropped
    assert tokenizer.decode(ids[16:]) == problems[0].prompt
    assert images["pixel_values"].shape == (1, 3, 64, 64)
    assert encode_problem(tokenizer, problems[3], processor=processor)[1] is None  # read_text twin: text only
    with pytest.raises(ValueError, match="has an image, but the model has no image processor"):
        encode_problem(tokenizer, problems[0])


def test_image_placeholders_are_outside_the_loss_mask(vl, problems):
    _, tokenizer, processor = vl
    ids, _ = encode_image_prompt(processor, problems[0].prompt, problems[0].image)
    input_ids, _, mask = pad_batch([ids], [[5, 6, 2]], tokenizer.pad_token_id)
    targets = input_ids[:, 1:]
    assert mask[targets == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)].sum() == 0
    assert mask.sum() == 3 and targets[mask.bool()].tolist() == [5, 6, 2]


def test_mixed_batches_score_each_row_as_alone(vl, problems):
    """Image and text rows of different lengths in one batch: collate keeps each picture with its row."""
    model, tokenizer, processor = vl
    encoded = [encode_problem(tokenizer, p, processor=processor) for p in problems[:4]]
    responses = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14]]
    ids, attn, mask = pad_batch([e[0] for e in encoded], responses, tokenizer.pad_token_id)
    with torch.no_grad():
        batched, _ = token_logprobs(model, ids, attn, "fp32", multimodal=collate([e[1] for e in encoded]))
        for row, (prompt, images) in enumerate(encoded):
            one_ids, one_attn, one_mask = pad_batch([prompt], [responses[row]], tokenizer.pad_token_id)
            alone, _ = token_logprobs(model, one_ids, one_attn, "fp32", multimodal=collate([images]))
            torch.testing.assert_close(batched[row][mask[row].bool()], alone[0][one_mask[0].bool()],
                                       atol=1e-5, rtol=1e-4)
        # the picture matters: another picture under the same tokens changes the log-probs
        swapped = collate([encoded[1][1], encoded[0][1]] + [e[1] for e in encoded[2:]])
        other, _ = token_logprobs(model, ids, attn, "fp32", multimodal=swapped)
    assert not torch.allclose(other[0][mask[0].bool()], batched[0][mask[0].bool()])


def test_engine_generates_with_pictures_and_never_emits_placeholders(vl, problems):
    model, tokenizer, processor = vl
    encoded = [encode_problem(tokenizer, p, processor=processor) for p in problems[:4]]
    engine = HFEngine(model, tokenizer.eos_token_id, tokenizer.pad_token_id, batch_size=4)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    batched = engine.generate([e[0] for e in encoded], greedy, multimodal=[e[1] for e in encoded])
    alone = [engine.generate([e[0]], greedy, multimodal=[e[1]])[0] for e in encoded]
    assert [s.token_ids for s in batched] == [s.token_ids for s in alone]

    class FavourPlaceholder(torch.nn.Module):  # logits that rank the image token first
        def forward(self, hidden):
            logits = torch.zeros(*hidden.shape[:-1], model.config.text_config.vocab_size)
            logits[..., model.config.image_token_id] = 10.0
            return logits

    placeholder = copy.deepcopy(model)
    placeholder.lm_head = FavourPlaceholder()
    engine = HFEngine(placeholder, tokenizer.eos_token_id, tokenizer.pad_token_id)
    segment = engine.generate([encoded[0][0]], greedy, multimodal=[encoded[0][1]])[0]
    assert segment.token_ids and model.config.image_token_id not in segment.token_ids


def alternating(prompts, completions, **_):
    """Reward 1 for every second finished completion (cut ones score 0 before this is called): groups with
    a finished response get reward variance whatever the untrained model writes, so the update has a gradient."""
    return [float(i % 2) for i in range(len(completions))]


@pytest.mark.parametrize("frozen", [False, True])
def test_smoke_rl_on_generated_vision_tasks_moves_vision_and_language_weights(vl_dir, tmp_path, frozen):
    cfg = load_config(None, [
        f"model.path={vl_dir}", f"model.freeze_vision_tower={str(frozen).lower()}", "task.generated=vision", "task.levels=[1]", "task.heldout_size=8",
        "task.dev_size=4", "task.warmup_size=4", "task.rl_prompts=16", "rl.iterations=2",
        "rl.prompts_per_iteration=16", "rl.samples_per_prompt=4", "rl.max_response_tokens=8", "rl.eval_every=2",
        "rl.save_every=2", "rl.reward_fn=test_multimodal:alternating", "rl.optimizer=sgd", "rl.lr=0.5",
        "eval.max_response_tokens=8", "run.precision=fp32"])
    data = build_datasets(cfg.task, cfg.run.seed)
    assert any(p.image for p in data.rl) and any(not p.image for p in data.rl)  # pictures and text twins
    before, _ = load_policy(vl_dir)
    summary = train_rl(cfg, data, tmp_path / "rl")
    after, _ = load_policy(tmp_path / "rl" / "final")
    assert load_processor(tmp_path / "rl" / "final") is not None
    moved = {name for name, p in after.named_parameters()
             if not torch.equal(p, dict(before.named_parameters())[name])}
    assert any("vision_tower" in name for name in moved) != frozen
    assert any("multi_modal_projector" in name for name in moved) and any("language_model" in name for name in moved)
    assert set(summary["heldout_per_task"]) == {"count", "compare", "read", "read_text"}


def test_sft_with_a_frozen_vision_tower_trains_projector_and_language_model_only(vl_dir, problems, tmp_path):
    cfg = load_config(None, ["model.freeze_vision_tower=true", "sft.max_steps=2", "sft.batch_size=4",
                             "sft.micro_batch_size=4", "sft.lr=1e-2", "sft.eval_every=2", "eval.max_response_tokens=4",
                             "run.precision=fp32"])
    model, tokenizer = load_policy(vl_dir)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    examples = [{"prompt": p.prompt, "response": vision_trace(p), "image": p.image} for p in problems]
    run_sft(model, tokenizer, examples, problems[:2], cfg, tmp_path, processor=load_processor(vl_dir))
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved and not any("vision_tower" in name for name in moved)
    assert any("multi_modal_projector" in name for name in moved)
    assert all(not p.requires_grad for p in model.get_encoder(modality="image").parameters())


def test_freezing_a_text_only_model_is_refused(tiny_model_dir):
    model, _ = load_policy(tiny_model_dir)
    with pytest.raises(ValueError, match="no vision tower"):
        freeze_vision_tower(model)


def test_collate_takes_tensors_and_merging_undoes_placeholder_expansion(vl, problems):
    _, tokenizer, processor = vl
    ids, images = encode_problem(tokenizer, problems[0], processor=processor)
    assert images[PICTURE].size == (64, 64) and set(collate([images, None])) == {"pixel_values"}
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert merge_placeholder_runs(ids, [image_id]) == [image_id] + ids[16:]
    assert merge_placeholder_runs([5, image_id, image_id, 6, image_id], [image_id]) == [5, image_id, 6, image_id]


def vllm_layout(folder):
    """Rename a transformers-5 LLaVA folder's CLIP tower weights `vision_tower.X` to the
    `vision_tower.vision_model.X` of hub checkpoints, which vLLM 0.32 loads (and transformers too)."""
    from safetensors.torch import load_file, save_file
    path = folder / "model.safetensors"
    weights = {("vision_tower.vision_model." + name.removeprefix("vision_tower.")
                if name.startswith("vision_tower.") else name): w for name, w in load_file(path).items()}
    save_file(weights, path, metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def vllm_vl(tmp_path_factory):
    """A vLLM engine on a tiny LLaVA (fp32), its folder, and the problems' encodings: a mixed batch of
    picture and text prompts. One attention head of width 32: vLLM's CPU attention takes head sizes
    32, 64, 80, ... (width 32 in 2 heads fails with "Unsupported CPU attention configuration: head_dim=16")."""
    pytest.importorskip("vllm", reason="vLLM not installed: make install-vllm")
    try:
        import vllm.model_executor.models.llava  # noqa: F401
    except ImportError as err:
        pytest.skip(f"vLLM's LLaVA does not import here ({err}): vllm/model_executor/models/pixtral.py imports "
                    "transformers' torchvision image processor, and this install has no torchvision for its torch")
    from mirrorl.rollout.vllm import VLLMEngine
    folder = vllm_layout(create_tiny_vl_model(tmp_path_factory.mktemp("vllm_vl"), hidden_size=32, num_layers=2,
                                              num_heads=1, vision_hidden_size=16, vision_layers=1))
    tokenizer, processor = load_policy(folder)[1], load_processor(folder)
    encoded = [encode_problem(tokenizer, p, processor=processor) for p in generate_vision(8, 0, (1, 2))] * 2
    assert any(images for _, images in encoded) and not all(images for _, images in encoded)
    engine = VLLMEngine(folder, precision="fp32", kv_cache_mb=64)
    yield engine, folder, encoded
    engine.sleep()  # on CPU: stops the engine, so another module can start its own


def vl_mismatch(model, encoded, segments):
    """|engine - trainer| log-prob of every sampled token, the trainer scoring the batch with its image tensors."""
    ids, attn, mask = pad_batch([e[0] for e in encoded], [s.token_ids for s in segments], model.config.pad_token_id)
    with torch.no_grad():
        trainer, _ = token_logprobs(model, ids, attn, "fp32", multimodal=collate([e[1] for e in encoded]))
    engine = torch.tensor([lp for s in segments for lp in s.logprobs])
    return (engine - trainer[mask.bool()]).abs()


def test_vllm_generates_with_pictures_matching_the_trainers_logprobs(vllm_vl):
    engine, folder, encoded = vllm_vl
    model, _ = load_policy(folder)
    prompts, images = [e[0] for e in encoded], [e[1] for e in encoded]
    for temperature, top_p in ((1.0, 1.0), (0.7, 0.9)):
        torch.manual_seed(0)
        segments = engine.generate(prompts, SamplingParams(temperature, top_p, 32, logprobs=True), multimodal=images)
        assert [s.prompt_ids for s in segments] == prompts  # the expanded ids, as given
        assert all(model.config.image_token_id not in s.token_ids for s in segments)
        diff = vl_mismatch(model.eval(), encoded, segments)
        print(f"vllm llava vs trainer (T={temperature}, top_p={top_p}): mean |diff| {diff.mean():.2e}, "
              f"max {diff.max():.2e} over {len(diff)} tokens")
        assert diff.mean() < 1e-4 and diff.max() < 1e-3
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    batched = engine.generate(prompts[:8], greedy, multimodal=images[:8])
    alone = [engine.generate([p], greedy, multimodal=[m])[0] for p, m in zip(prompts[:8], images[:8])]
    assert [s.token_ids for s in batched] == [s.token_ids for s in alone]
    picture = next(m for m in images if m)
    with pytest.raises(ValueError, match="needs the picture"):
        engine.generate([prompts[images.index(picture)]], greedy,
                        multimodal=[{k: v for k, v in picture.items() if k != PICTURE}])


def test_vllm_update_weights_reaches_the_vision_tower_and_placeholders_stay_suppressed(vllm_vl):
    engine, folder, encoded = vllm_vl
    prompts, images = [e[0] for e in encoded], [e[1] for e in encoded]
    sampling = SamplingParams(1.0, 1.0, 24, logprobs=True)
    model = perturbed_policy(folder)
    engine.update_weights(model.state_dict(), version=3)
    segments = engine.generate(prompts, sampling, multimodal=images)
    assert {s.policy_version for s in segments} == {3}
    assert vl_mismatch(model.eval(), encoded, segments).max() < 1e-3  # the new tower, projector and language model
    original, _ = load_policy(folder)
    assert vl_mismatch(original.eval(), encoded, segments).max() > 1e-2
    with torch.no_grad():
        model.model.language_model.norm.weight.zero_()  # every logit 0: the placeholder is as likely as any token
    engine.update_weights(model.state_dict(), version=4)
    torch.manual_seed(2)
    segments = engine.generate(prompts, sampling, multimodal=images)
    vocab = model.config.text_config.vocab_size
    assert all(lp == pytest.approx(-math.log(vocab), abs=1e-5) for s in segments for lp in s.logprobs)
    assert sum(len(s.token_ids) for s in segments) > 200
    assert all(model.config.image_token_id not in s.token_ids for s in segments)
    engine.update_weights(original.state_dict(), version=0)
