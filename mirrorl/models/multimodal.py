"""Multimodal prompt inputs: a prompt with its picture in, token ids and per-prompt image inputs out.

A vision-language model's processor turns ``<image>`` + prompt text into token ids (the placeholder
expanded into one token per image feature, e.g. 16 for the demo's 64x64 picture in 16-pixel patches)
and image tensors such as ``pixel_values`` (1, 3, H, W) for LLaVA, or flattened patches plus
``image_grid_thw`` for Qwen2-VL. The HF rollout engine and the log-prob forward pass both receive these
same tensors (`collate`), so training scores responses under exactly the inputs generation saw.
Each prompt's inputs also keep the decoded picture (key `PICTURE`), for engines that run the model's
processor themselves (vLLM): the same processor on the same picture gives them the same tensors.
Image placeholder tokens sit in the prompt, so the response mask already keeps them out of every loss;
`placeholder_token_ids` also keeps the policy from generating one.
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor

from mirrorl.tasks.images import open_image

# Processor outputs that hold one entry per image (concatenated along dim 0 over a batch's images).
IMAGE_KEYS = ("pixel_values", "image_grid_thw", "image_sizes")
# The decoded picture (PIL RGB) beside the tensors; vLLM's name for it in `multi_modal_data`.
PICTURE = "image"


def encode_image_prompt(processor, text: str, image_ref: str, chat_template: bool = False
                        ) -> tuple[list[int], dict[str, Tensor | Image.Image]]:
    """Token ids and image inputs of a prompt about one picture.

    The picture comes first: ``processor.image_token + text``, or with `chat_template` a user turn of
    an image and the text through the processor's chat template.

    Args:
        processor: a `transformers` multimodal processor (`AutoProcessor`) with an `image_token`.
        image_ref: a path or data URI (`mirrorl.tasks.images.open_image`).
    Returns: (prompt token ids, image inputs): {key: tensor} for the `IMAGE_KEYS` the processor
        produced, e.g. ``pixel_values`` (1, 3, H, W) float, and `PICTURE`: the picture the processor
        was given (PIL, RGB, as decoded).
    Raises: DataError when the picture cannot be decoded.
    """
    if chat_template:
        text = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
            add_generation_prompt=True, tokenize=False)
    else:
        text = processor.image_token + text
    picture = open_image(image_ref)
    out = processor(text=[text], images=[picture], return_tensors="pt")
    return out["input_ids"][0].tolist(), {key: out[key] for key in IMAGE_KEYS if key in out} | {PICTURE: picture}


def collate(inputs: list[dict | None], device: torch.device | str | None = None) -> dict[str, Tensor]:
    """The image tensors of a batch: each `IMAGE_KEYS` tensor of the rows that have images, concatenated
    along dim 0 in row order (how LLaVA and Qwen2-VL match image features to placeholder tokens).
    Rows without an image (None) add nothing; an all-text batch gives {}."""
    rows = [row for row in inputs if row]
    return {key: torch.cat([row[key] for row in rows]).to(device) for key in IMAGE_KEYS if rows and key in rows[0]}


def merge_placeholder_runs(ids: list[int], placeholder_ids: list[int]) -> list[int]:
    """`ids` with every run of one repeated placeholder token cut to a single token: the prompt before
    the processor expanded each image placeholder into one token per image feature (16 ``<image>``
    tokens back to one for the demo's LLaVA), the form engines that expand placeholders themselves
    (vLLM) take. Two pictures with nothing between them would merge: keep text or a marker between."""
    return [t for i, t in enumerate(ids) if t not in placeholder_ids or i == 0 or ids[i - 1] != t]


def placeholder_token_ids(config) -> list[int]:
    """Ids of the image/video placeholder tokens of a model config (none for a text-only model).

    Generation must never emit one: the next forward pass would look for image features for it.
    """
    ids = {getattr(config, name, None) for name in ("image_token_id", "image_token_index", "video_token_id")}
    return sorted(i for i in ids if isinstance(i, int))


def freeze_vision_tower(model) -> None:
    """Stop training a vision-language model's image encoder (LLaVA's ``vision_tower``, Qwen2-VL's
    ``visual``, found with transformers' `get_encoder(modality="image")`); the projector and the language
    model stay trainable. Optimizers built afterwards over trainable parameters leave it alone.

    Raises: ValueError when `model` has no image encoder (a text-only model).
    """
    encoder = model.get_encoder(modality="image")
    if encoder is model or encoder is getattr(model, "base_model", None):
        raise ValueError(f"{type(model).__name__} has no vision tower to freeze (model.freeze_vision_tower is "
                         "for vision-language models)")
    encoder.requires_grad_(False)


def trainable_parameters(model) -> list:
    """The parameters an optimizer should update: those with `requires_grad` (all but a frozen vision tower)."""
    return [p for p in model.parameters() if p.requires_grad]
