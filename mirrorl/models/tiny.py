"""A tiny Llama policy and a character-level tokenizer, created from scratch for the CPU demo.

The model is a real `transformers` architecture (`LlamaForCausalLM`) saved with `save_pretrained`
(safetensors) next to a `tokenizer.json` that `AutoTokenizer` loads, so every later stage reads it
through `mirrorl.models.loading.load_policy`, exactly as it would read a downloaded checkpoint.
It does not pretrain anything: the weights are random until warm-up SFT.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
# Every character the generated tasks and their chains of thought use; anything else maps to <unk>.
ALPHABET = "0123456789+-*/()=<>.,:;?!'# \n\\{}abcdefghijklmnopqrstuvwxyz"


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: one token per character of `ALPHABET` plus pad/bos/eos/unk.

    Returns a `PreTrainedTokenizerFast` (vocabulary: `len(ALPHABET)` characters + 4 specials = 62 tokens) whose `decode` inverts
    `encode` exactly for text over `ALPHABET`.
    """
    vocab = {tok: i for i, tok in enumerate([PAD, BOS, EOS, "<unk>", *ALPHABET])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token="<unk>",
        padding_side="left", clean_up_tokenization_spaces=False,
    )


def tiny_llama_config(tokenizer, hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4,
                      max_positions: int = 1024) -> LlamaConfig:
    """The tiny Llama's config for `tokenizer` (vocabulary and special ids); arguments as in `create_tiny_model`."""
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=int(hidden_size * 2.6875),
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=True, rope_theta=10000.0,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def create_tiny_model(out_dir: str | Path, hidden_size: int = 256, num_layers: int = 4,
                      num_heads: int = 4, max_positions: int = 1024, seed: int = 0) -> Path:
    """Create a randomly initialised Llama causal LM (about 3.2M parameters at the defaults) and save it.

    Args:
        out_dir: folder to write `config.json`, `model.safetensors` and the tokenizer files into.
        hidden_size, num_layers, num_heads: model width, depth and attention heads; the MLP is
            about 2.7x wider than `hidden_size`, as in Llama.
        max_positions: the longest prompt + response in tokens (characters) the model will see.
        seed: initialisation seed.
    Returns: `out_dir` as a Path.
    """
    out_dir = Path(out_dir)
    tokenizer = char_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(tokenizer, hidden_size, num_layers, num_heads, max_positions))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
