"""The demo's tiny vision-language policy: LLaVA with a small CLIP vision tower and the tiny Llama.

`LlavaForConditionalGeneration` joins a `CLIPVisionModel` (here 2 layers, width 128, 16-pixel patches
on 64x64 pictures: 16 patch features, the CLS feature dropped) through a two-layer projector to the
tiny language model of `mirrorl.models.tiny` (same `LlamaConfig`, same character tokenizer plus one
``<image>`` token). The processor is a `LlavaProcessor` around that tokenizer and the PIL/numpy CLIP
image processor (`CLIPImageProcessorPil`; no torchvision): it expands ``<image>`` into 16 placeholder
tokens and turns the picture into ``pixel_values`` (1, 3, 64, 64). Everything is written with
`save_pretrained` and read back by `mirrorl.models.loading` through the Auto classes, as a downloaded
LLaVA checkpoint would be. Weights are random until warm-up SFT. There is no pretrained encoder at
this size, and the demo keeps the random CLIP tower frozen (`model.freeze_vision_tower`): its features
keep different pictures apart (mean cosine 0.94 between pictures), while a tower trained from scratch
collapsed to one feature for every picture (cosine 0.9999) before the language model learned to use it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration,
                          LlavaProcessor)

from mirrorl.models.tiny import char_tokenizer, tiny_llama_config

IMAGE_TOKEN = "<image>"


def tiny_vl_processor(image_size: int = 64, patch_size: int = 16) -> LlavaProcessor:
    """The character tokenizer with ``<image>`` added (63 tokens) and a CLIP image processor that
    resizes and centre-crops to `image_size` pixels, normalised with CLIP's mean and std."""
    tokenizer = char_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    images = CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                   crop_size={"height": image_size, "width": image_size})
    return LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=patch_size,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          image_token=IMAGE_TOKEN)


def create_tiny_vl_model(out_dir: str | Path, hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4,
                         vision_hidden_size: int = 128, vision_layers: int = 2, image_size: int = 64,
                         patch_size: int = 16, max_positions: int = 1024, seed: int = 0) -> Path:
    """Create a randomly initialised tiny LLaVA (3.6M parameters at the defaults) and save it with its processor.

    Args:
        out_dir: folder for `config.json`, `model.safetensors`, tokenizer and processor files.
        hidden_size, num_layers, num_heads, max_positions: the language model (see `create_tiny_model`).
        vision_hidden_size, vision_layers: width and depth of the CLIP vision tower (2 heads).
        image_size, patch_size: picture side and patch side in pixels; (image_size / patch_size)^2
            placeholder tokens per picture.
        seed: initialisation seed.
    Returns: `out_dir` as a Path.
    """
    out_dir = Path(out_dir)
    processor = tiny_vl_processor(image_size, patch_size)
    tokenizer = processor.tokenizer
    vision = CLIPVisionConfig(hidden_size=vision_hidden_size, intermediate_size=2 * vision_hidden_size,
                              num_hidden_layers=vision_layers, num_attention_heads=2, image_size=image_size,
                              patch_size=patch_size)
    config = LlavaConfig(vision_config=vision,
                         text_config=tiny_llama_config(tokenizer, hidden_size, num_layers, num_heads, max_positions),
                         image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir
