"""Typed run configuration: dataclasses with units and help, loaded from YAML with `key=value` overrides.

Every field documents itself through `metadata["help"]`, which `mirrorl <command> --help` prints, so the
reference of options lives in one place. Loading goes through OmegaConf's structured configs, which
check types and reject unknown keys; errors name the file and the key.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mirrorl.curation.filters import TYPES as QUESTION_TYPES
from mirrorl.tasks.vision import TASKS as VISION_TASKS


def opt(default, help: str):
    """A dataclass field with a default and a one-line help text (units in the text or the name)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class RunConfig:
    out_dir: str = opt("runs/demo", "output folder (run folder; for tiny-model the model folder)")
    seed: int = opt(0, "seed for data generation, sampling and initialisation")
    threads: int = opt(0, "torch intra-op threads; 0 = one per physical core (measured fastest for tiny models)")
    precision: str = opt("auto", "training forward/backward precision: bf16 (autocast, fp32 master weights), fp32, or "
                         "auto (bf16 where the device runs it natively: CUDA from compute capability 8.0, CPUs with "
                         "AVX-512 or AMX; fp32 elsewhere, e.g. AVX2-only CPUs, where bf16 is emulated and 19x slower)")
    generation_precision: str = opt("fp32", "rollout and evaluation precision: fp32, bf16 (autocast) or auto (as for "
                                    "precision); on CPU fp32 generates about 1.2x faster (bench/cpu_settings.py)")
    device: str = opt("cpu", "torch device: cpu, cuda, cuda:1, ...")


@dataclass
class ModelConfig:
    path: str = opt("", "Hugging Face model folder to start from; empty in the demo = create the tiny model")
    hidden_size: int = opt(256, "tiny model only: hidden size")
    num_layers: int = opt(4, "tiny model only: transformer layers")
    num_heads: int = opt(4, "tiny model only: attention heads")
    chat_template: bool = opt(False, "wrap prompts with the tokenizer's chat template (instruction-tuned models)")
    freeze_vision_tower: bool = opt(False, "vision-language models: train the projector and language model only "
                                    "(SFT and RL); the image encoder keeps its weights")


@dataclass
class TaskConfig:
    generated: str = opt("arithmetic", "task generated when `data` is empty: arithmetic (text chains) or vision "
                         "(pictures for a vision-language policy, with the text twins of the read task)")
    vision_tasks: list = opt(["count", "compare", "read"], "generated vision: task kinds (count coloured shapes, "
                             "compare positions, read arithmetic rendered as a picture)")
    data: str = opt("", "jsonl of RL prompts (GSM8K, MATH, Countdown, vision or mirrorl format); empty = generated")
    heldout_data: str = opt("", "jsonl of held-out prompts; empty = split heldout_size prompts off `data` (or generate)")
    instruction: str = opt("", "text appended to every loaded prompt, e.g. ' Put the final answer in \\boxed{}.'")
    levels: list = opt([1, 2, 3, 4], "generated task: difficulty levels (level L has L+1 steps)")
    heldout_size: int = opt(400, "held-out prompts for evaluation, spread evenly over levels")
    dev_size: int = opt(100, "dev prompts for SFT early stopping (disjoint from held-out)")
    rl_prompts: int = opt(4000, "generated task: size of the RL prompt pool (gold answers only, no traces)")
    warmup_levels: list = opt([1, 2], "generated task: levels that get warm-up chain-of-thought traces, drawn round "
                              "robin from this list (a level listed three times gets three times the traces)")
    warmup_size: int = opt(3000, "generated task: number of verified warm-up traces (only for warmup_levels)")
    slip_rate: float = opt(0.15, "generated traces: probability a step shows a slip that the check catches")
    check_rate: float = opt(1.0, "generated traces: probability a step is checked by the inverse operation "
                                 "(below 1, traces differ in length by their checks: what long2short can drop)")


@dataclass
class SFTConfig:
    data: str = opt("", "jsonl with `prompt` and `response` fields; empty = generated warm-up traces")
    lr: float = opt(1e-3, "AdamW peak learning rate: linear warm-up, then cosine decay to min_lr_ratio * lr at max_steps")
    min_lr_ratio: float = opt(0.1, "final learning rate as a fraction of lr (the SFT control continues at this rate)")
    warmup_steps: int = opt(20, "linear learning-rate warm-up, optimizer steps")
    batch_size: int = opt(32, "sequences per optimizer step")
    micro_batch_size: int = opt(32, "sequences per forward/backward pass (memory knob, no effect on the math)")
    max_steps: int = opt(450, "optimizer steps (the cosine schedule ends here); early stopping may end sooner")
    eval_every: int = opt(50, "optimizer steps between dev evaluations")
    patience: int = opt(4, "stop after this many dev evaluations without improvement; best weights kept")
    max_seconds: float = opt(0.0, "stop after this many wall seconds (0 = no limit); used by the SFT control")


@dataclass
class RLConfig:
    loss: str = opt("k15", "policy loss: k15 (online mirror descent, report eq. 3); baselines: grpo (group-normalised "
                    "advantages, PPO clip, token mean), rloo (leave-one-out baseline), rest (fit correct responses only)")
    iterations: int = opt(24, "RL iterations (one rollout phase + one training phase each)")
    prompts_per_iteration: int = opt(32, "prompts sampled per iteration")
    samples_per_prompt: int = opt(8, "k: responses per prompt; their mean reward is the baseline")
    tau: float = opt(1.0, "tau: strength of the log-ratio regulariser against the previous iterate (loss k15)")
    clip_eps: float = opt(0.2, "PPO clip range eps: token ratios outside [1 - eps, 1 + eps] stop pushing (loss grpo)")
    length_penalty_weight: float = opt(0.0, "w in r + w * len_reward (report section 2.3.3): shorter correct responses "
                                       "gain up to w/2, longer ones lose up to w/2, per group (0 = off)")
    length_penalty_warmup: int = opt(0, "iterations of standard RL before the length penalty switches on at full weight")
    sampler: str = opt("uniform", "prompt sampling (report section 2.3.4): uniform (passes over the pool), prioritized "
                       "(P(i) ~ max(1 - s_i, priority_floor)) or curriculum (uniform, then hard prompts only)")
    success_ema: float = opt(0.5, "prioritized/curriculum: weight of a prompt's newest group success rate in its "
                             "estimate s_i (exponential moving average)")
    success_initial: float = opt(0.5, "prioritized/curriculum: s_i of a prompt not yet drawn")
    priority_floor: float = opt(0.05, "prioritized: smallest sampling weight, so solved prompts stay drawable")
    curriculum_switch_iteration: int = opt(12, "curriculum: first iteration (0-based) that draws hard prompts only")
    curriculum_hard_levels: list = opt([], "curriculum: problem levels that count as hard (e.g. [3, 4] in the demo); "
                                       "empty = prompts with s_i <= curriculum_hard_success at the switch")
    curriculum_hard_success: float = opt(0.5, "curriculum without hard levels: success estimate at or below which a "
                                         "prompt is hard")
    reward: str = opt("rules", "task reward (report sections 2.3.1, 2.3.5): rules (rule-based verifier), judge (math "
                      "responses judged by the chain-of-thought reward model, judge.*) or rules_then_judge (the judge "
                      "only where the rules cannot decide, judge.undecided_reasons)")
    reward_fn: str = opt("", "user reward function 'module:function' with TRL's signature f(prompts, completions, "
                         "**columns) -> list[float], used instead of the verifier's 0/1 reward (empty = verifier)")
    optimizer: str = opt("adamw", "adamw, or sgd (plain gradient steps: no per-parameter normalisation, so "
                         "parameters with small, noisy policy gradients move little)")
    lr: float = opt(3e-5, "learning rate")
    lr_warmup_iterations: int = opt(0, "raise the learning rate linearly over this many first iterations (0 = off); "
                                    "Adam's first steps are sign steps, which a fresh optimizer state makes large")
    weight_decay: float = opt(0.0, "weight decay (decoupled for adamw)")
    minibatches: int = opt(2, "minibatches per pass over the iteration's trajectories; each takes one optimizer step")
    epochs: int = opt(1, "passes over the iteration's trajectories (optimizer steps = epochs * minibatches)")
    drop_uniform_groups: bool = opt(True, "skip groups whose k advantages are all zero (equal rewards; for rest: none "
                                    "correct): no policy gradient, only their tau term")
    reset_optimizer: bool = opt(False, "reset optimizer state at the start of every iteration (as in the report)")
    grad_clip: float = opt(1.0, "max global gradient norm (0 = off)")
    temperature: float = opt(1.0, "rollout sampling temperature")
    top_p: float = opt(1.0, "rollout nucleus sampling")
    max_response_tokens: int = opt(224, "longest response in tokens (all segments together); longer ones are cut and "
                                   "score 0")
    partial_rollout_tokens: int = opt(0, "partial rollouts (report section 2.6.2): new tokens per response per "
                                      "iteration; unfinished responses wait in the replay buffer and continue in the "
                                      "next iteration (0 = off)")
    reference_logprobs: str = opt("trainer", "where the tau term's reference log-probs (theta_i's, of the sampled "
                                  "tokens) come from when an iteration takes several optimizer steps: trainer (a "
                                  "forward pass over the iteration's trajectories before the first step) or engine "
                                  "(the rollout engine's, returned while sampling: no extra pass, but exact only when "
                                  "both compute alike; logprob_diff/* measures the gap, and the hf engine keeps "
                                  "batch x tokens x vocabulary logits, see rollout.logprob_parity)")
    train_stale_tokens: bool = opt(False, "partial rollouts: also train on tokens generated by older policies "
                                   "(default: left out of the loss, which assumes samples of the current policy)")
    repeat_window_tokens: int = opt(0, "stop a rollout whose last N tokens are a loop of period <= "
                                    "repeat_max_period_tokens (finish reason repeat, reward 0 - repeat_penalty); "
                                    "0 = off")
    repeat_max_period_tokens: int = opt(32, "longest loop period repeat detection looks for (at most half the window)")
    repeat_penalty: float = opt(0.0, "subtracted from the reward of a rollout stopped in a loop")
    micro_batch_size: int = opt(64, "sequences per forward/backward pass (memory knob, no effect on the math)")
    eval_every: int = opt(6, "iterations between held-out evaluations (and at the end)")
    save_every: int = opt(6, "iterations between checkpoints (and at the end)")
    keep_checkpoints: int = opt(2, "most recent checkpoints kept on disk")
    max_seconds: float = opt(0.0, "stop after this many wall seconds of RL (0 = no limit)")


@dataclass
class RolloutConfig:
    engine: str = opt("hf", "rollout and evaluation backend: hf (transformers generate on the trainer's own module) or "
                      "vllm (its own copy of the weights, updated in place after every optimizer update; "
                      "make install-vllm)")
    colocate: bool = opt(False, "release the engine's memory during each training phase and take it back after "
                         "(report section 2.6.3): vLLM sleep(level=1) on GPU, stop and restart on CPU; logs "
                         "colocate/freed_mb")
    logprob_parity: bool = opt(False, "engines return each sampled token's log-prob; log the mismatch with the "
                               "trainer's recomputed log-probs (logprob_diff/mean_abs, logprob_diff/max) every "
                               "iteration. Costs a reference pass when rl.minibatches x rl.epochs = 1, and the hf "
                               "engine keeps (batch x tokens x vocabulary) logits: on for the demo's 62-token "
                               "vocabulary, think twice for a 150k one")
    static_cache: bool = opt(True, "hf: preallocate the KV cache for the batch's prompt + max_new_tokens and write it "
                             "in place (transformers' static cache) instead of growing it by concatenation every "
                             "step; on the demo model 1.37x faster at 256 rows per call, 1.08x at 128 (bench/README.md)")
    chunk_tokens: int = opt(16, "hf: tokens per generate call; between calls the rows that finished leave the batch "
                            "with their KV cache, so a batch costs the sum of its response lengths rather than rows "
                            "x the longest (1.60x tokens/s on the demo's warm-up model, bench/README.md); 0 = one "
                            "call per batch (every row runs until the longest ends)")
    vllm_kv_cache_mb: int = opt(512, "vllm: memory for the KV cache, MiB (sets vLLM's kv_cache_memory_bytes)")
    vllm_max_model_len: int = opt(0, "vllm: longest prompt + response in tokens; 0 = the model's max_position_embeddings")


@dataclass
class EvalConfig:
    samples: int = opt(1, "responses per prompt; pass@1 is averaged over them")
    temperature: float = opt(0.0, "0 = greedy decoding (pass@1 of the greedy answer); > 0 samples `samples` responses per prompt")
    max_response_tokens: int = opt(224, "longest response in tokens")
    batch_size: int = opt(128, "prompts per generation batch")


@dataclass
class Long2ShortConfig:
    prompts: int = opt(256, "RL-pool prompts sampled from the long-CoT model for shortest rejection sampling and DPO pairs")
    samples_per_prompt: int = opt(8, "n: responses per prompt (the report's shortest rejection sampling uses 8)")
    temperature: float = opt(1.0, "sampling temperature for those responses")
    max_response_tokens: int = opt(224, "longest sampled response in tokens; cut ones count as incorrect")
    merge_weights: list = opt([0.5], "weights of the short model in the merge: one value = that merge (0.5 = the "
                              "report's simple average); several = each tried in increasing order on the dev prompts, "
                              "keeping the first whose dev pass@1 is at least the long model's minus merge_tolerance "
                              "(none: the most accurate)")
    merge_tolerance: float = opt(0.0, "dev pass@1 a chosen merge may lose against the long model (merge_weights)")
    sft_lr: float = opt(3e-5, "peak learning rate of the SFT on the shortest correct responses: the long model is a "
                        "finished RL policy, and the warm-up rate sft.lr lowered its dev accuracy from 0.80 to 0.19 "
                        "in 50 steps (1e-4: 0.67; 3e-5: 0.80 at 14% fewer tokens)")
    sft_steps: int = opt(100, "optimizer steps of that SFT (dev accuracy checked every quarter, best weights kept)")
    short_sft_prompts: int = opt(1000, "generated arithmetic without a given short model: RL-pool prompts whose short "
                                 "traces (one running total per line) fine-tune the warm-up model into the short-CoT "
                                 "merge partner")
    short_sft_steps: int = opt(150, "optimizer steps of that short-CoT SFT (dev early stopping as in warm-up SFT)")
    checkpoint_tolerance: float = opt(0.01, "choosing the long-CoT RL checkpoint: among checkpoints within this much "
                                      "held-out accuracy of the best, the one with the fewest mean response tokens")
    rl_iterations: int = opt(12, "long2short RL: RL iterations from the long model with the length penalty on from "
                             "the start (0 = skip the method)")
    rl_length_penalty_weight: float = opt(0.5, "long2short RL: length-penalty weight w (report section 2.3.3)")
    rl_max_response_tokens: int = opt(128, "long2short RL: the smaller response limit in tokens")


@dataclass
class DPOConfig:
    beta: float = opt(0.1, "DPO beta: strength of the implicit KL constraint to the frozen reference (not given "
                      "in the report)")
    length_ratio: float = opt(1.5, "a correct response is a negative when longer than this times the shortest "
                              "correct one (report 2.4); incorrect responses longer than it always are")
    nll_weight: float = opt(1.0, "weight of the chosen response's per-token NLL added to the DPO loss (RPO, Pang "
                            "et al. 2024, who use 1; 0 = plain DPO, which here lowers the chosen answers too)")
    lr: float = opt(1e-5, "AdamW learning rate (constant)")
    steps: int = opt(100, "optimizer steps")
    batch_size: int = opt(16, "preference pairs per optimizer step")
    micro_batch_size: int = opt(16, "pairs per forward/backward pass (memory knob, no effect on the math)")


@dataclass
class CurateConfig:
    samples: int = opt(10, "responses per prompt whose share of correct ones is its pass rate (report section 2.1: 10)")
    temperature: float = opt(1.0, "sampling temperature for the pass rate (the report's 'relatively high', value not given)")
    max_response_tokens: int = opt(224, "longest response in tokens; a cut response counts as wrong, as in RL")
    max_pass_rate: float = opt(0.9, "drop prompts whose pass rate is above this (too easy); 1 = keep all")
    drop_types: list = opt(["multiple_choice", "true_false", "proof"], "question types dropped by rule (guessable or "
                           "not checkable; mirrorl/curation/filters.py)")
    guess_samples: int = opt(8, "answer-only tries per prompt: a math prompt answered right in any of them without "
                             "reasoning is dropped (report: N = 8); 0 = skip this test")
    guess_model: str = opt("", "model folder that guesses the answers (empty = the --model that measures pass rates)")
    guess_prefix: str = opt("\\boxed{", "the guessed response starts with this text, so the model writes the answer "
                            "right away (works for base models too)")
    guess_instruction: str = opt("", "text appended to the prompt when asking for the answer alone, e.g. ' Give only the "
                                 "final answer.'")
    guess_max_tokens: int = opt(16, "tokens the model may write after guess_prefix")
    guess_temperature: float = opt(1.0, "sampling temperature of the guesses")


@dataclass
class ValidateConfig:
    test_agreement: float = opt(0.7, "keep a test when at least this fraction of the solutions agree on its output "
                                "(report section 2.3.5: 7 of 10); in (0.5, 1]")
    problem_pass: float = opt(0.9, "keep a problem when at least this fraction of the solutions pass every kept test "
                              "(report: 9 of 10)")
    min_valid_tests: int = opt(1, "fewest kept tests a kept problem has (the report's generators gave >= 40 of 50)")
    generator: str = opt("", "test-input generator 'module:function', called as f(row, n) -> list[str]; its inputs "
                         "join the row's own (empty = the row's inputs only)")
    generated_inputs: int = opt(50, "n passed to the generator (report: 50 test cases per problem)")
    time_limit_s: float = opt(5.0, "CPU seconds per run of one solution on one input (wall clock: twice that)")
    concurrency: int = opt(8, "sandbox requests in flight")


@dataclass
class JudgeConfig:
    backend: str = opt("http", "http (an OpenAI-compatible /v1/chat/completions endpoint) or hf (a local model folder)")
    url: str = opt("", "http: the endpoint's root, e.g. http://127.0.0.1:8000")
    model: str = opt("", "http: the model name sent with each request; hf: the judge model's folder")
    api_key_env: str = opt("MIRRORL_JUDGE_API_KEY", "http: environment variable holding the API key (unset = none)")
    temperature: float = opt(0.0, "sampling temperature of the judge's reasoning (0 = greedy)")
    max_tokens: int = opt(1024, "longest judge reply in tokens (reasoning + JSON verdict)")
    timeout_s: float = opt(120.0, "http: seconds per request (retried 3 times on errors)")
    concurrency: int = opt(8, "http: requests in flight")
    chat_template: bool = opt(False, "hf: wrap the judge prompt in the judge tokenizer's chat template")
    cache: str = opt("", "jsonl cache of verdicts (keyed by SHA-256 of judge name + prompt); empty = "
                     "RUN_DIR/judge_cache.jsonl")
    undecided_reasons: list = opt(["parse_error", "timeout"], "rules_then_judge: rule verdicts the judge re-decides "
                                  "(add not_equal to let it overturn the rules' negatives)")


@dataclass
class DistributedConfig:
    backend: str = opt("local", "local: one process, the engine shares the trainer's weights; ray: rollout and trainer "
                       "workers as Ray actors (mirrorl/distributed, report section 2.6.1)")
    address: str = opt("", "ray: cluster to join (ray.init address, e.g. 'auto' after `ray start --head`); empty = start "
                       "a local Ray instance")
    num_cpus: float = opt(0.0, "ray, local instance only: logical CPUs it offers (0 = all cores); may exceed the cores "
                          "so that fractional actors fit")
    rollout_workers: int = opt(2, "ray: rollout worker actors, each with its own engine and model copy")
    trainer_workers: int = opt(2, "ray: trainer worker actors; one torch.distributed group, data-parallel")
    trainer_strategy: str = opt("ddp", "ray: ddp (full replica per trainer) or fsdp (parameters sharded, "
                                "torch.distributed.fsdp.fully_shard; for models that do not fit one device)")
    cpus_per_worker: float = opt(1.0, "ray: logical CPUs reserved per actor (fractions allowed)")
    gpus_per_worker: float = opt(0.0, "ray: GPUs reserved per actor (1 for a GPU per worker, with run.device=cuda; trainers then use NCCL)")
    threads_per_worker: int = opt(1, "ray: torch intra-op threads per actor")
    bucket_mb: float = opt(256.0, "ray: weight-transfer bucket size in MiB (one object-store object per bucket)")
    max_restarts: int = opt(2, "ray: times Ray restarts a crashed rollout worker (it then reloads the current weights)")


@dataclass
class DemoConfig:
    control: bool = opt(True, "also continue warm-up SFT for RL's wall time and report sft_continued_accuracy")
    long2short: bool = opt(False, "after RL, run `mirrorl long2short` on the run (long2short.* settings) and add its "
                           "token-efficiency table to the report (generated arithmetic only)")


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    long2short: Long2ShortConfig = field(default_factory=Long2ShortConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the file and the key."""


_CHOICES = {"run.precision": ("auto", "bf16", "fp32"), "run.generation_precision": ("auto", "bf16", "fp32"),
            "rl.loss": ("k15", "grpo", "rloo", "rest"), "rl.sampler": ("uniform", "prioritized", "curriculum"),
            "rl.optimizer": ("adamw", "sgd"), "rl.reference_logprobs": ("trainer", "engine"),
            "task.generated": ("arithmetic", "vision"),
            "rl.reward": ("rules", "judge", "rules_then_judge"),
            "judge.backend": ("http", "hf"),
            "distributed.backend": ("local", "ray"), "distributed.trainer_strategy": ("ddp", "fsdp"),
            "rollout.engine": ("hf", "vllm")}
_POSITIVE = ("rl.iterations", "rl.prompts_per_iteration", "rl.samples_per_prompt", "rl.tau", "rl.clip_eps", "rl.lr",
             "rl.success_ema", "rl.priority_floor",
             "rl.minibatches", "rl.epochs", "rl.max_response_tokens", "rl.micro_batch_size", "rl.eval_every",
             "rl.save_every", "rl.keep_checkpoints", "rl.temperature", "rl.top_p", "sft.lr", "sft.batch_size",
             "sft.micro_batch_size", "sft.max_steps", "sft.eval_every", "sft.patience", "sft.warmup_steps",
             "eval.samples", "eval.max_response_tokens", "eval.batch_size", "task.heldout_size", "task.dev_size",
             "task.rl_prompts", "model.hidden_size", "model.num_layers", "model.num_heads", "long2short.prompts",
             "long2short.samples_per_prompt", "long2short.max_response_tokens", "long2short.sft_lr",
             "long2short.sft_steps", "dpo.beta", "dpo.length_ratio",
             "dpo.lr", "dpo.steps", "dpo.batch_size", "dpo.micro_batch_size", "curate.samples",
             "curate.max_response_tokens", "curate.guess_max_tokens", "validate.problem_pass",
             "validate.generated_inputs", "validate.time_limit_s", "validate.concurrency", "judge.max_tokens",
             "judge.timeout_s", "judge.concurrency", "distributed.rollout_workers",
             "distributed.trainer_workers", "distributed.cpus_per_worker", "distributed.threads_per_worker",
             "distributed.bucket_mb", "rollout.vllm_kv_cache_mb")
_NON_NEGATIVE = ("rl.length_penalty_weight", "rl.length_penalty_warmup", "rl.success_initial",
                 "rl.curriculum_switch_iteration", "rl.curriculum_hard_success", "rl.weight_decay",
                 "rl.lr_warmup_iterations", "rl.grad_clip", "rl.max_seconds", "rl.partial_rollout_tokens",
                 "rl.repeat_window_tokens", "rl.repeat_penalty", "sft.max_seconds", "sft.min_lr_ratio",
                 "task.warmup_size", "task.slip_rate", "task.check_rate", "eval.temperature", "long2short.temperature",
                 "long2short.merge_tolerance", "dpo.nll_weight", "curate.temperature", "curate.max_pass_rate",
                 "curate.guess_samples", "curate.guess_temperature", "validate.min_valid_tests", "judge.temperature",
                 "distributed.num_cpus",
                 "distributed.gpus_per_worker", "distributed.max_restarts", "rollout.vllm_max_model_len",
                 "rollout.chunk_tokens")
_AT_MOST_ONE = ("rl.top_p", "rl.success_ema", "rl.success_initial", "rl.priority_floor", "rl.curriculum_hard_success",
                "sft.min_lr_ratio", "task.slip_rate", "task.check_rate", "curate.max_pass_rate",
                "validate.test_agreement", "validate.problem_pass")


def _validate(cfg: Config, source: str) -> None:
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        if getattr(getattr(cfg, section), name) not in choices:
            raise ConfigError(f"{source}: {key} must be one of {choices}, got {getattr(getattr(cfg, section), name)!r}")
    for key in _POSITIVE:
        section, name = key.split(".")
        if not getattr(getattr(cfg, section), name) > 0:
            raise ConfigError(f"{source}: {key} must be > 0, got {getattr(getattr(cfg, section), name)!r}")
    for key in _NON_NEGATIVE:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not 0 <= value < float("inf"):
            raise ConfigError(f"{source}: {key} must be >= 0 and finite, got {value!r}")
    for key in _AT_MOST_ONE:
        section, name = key.split(".")
        if getattr(getattr(cfg, section), name) > 1:
            raise ConfigError(f"{source}: {key} must be <= 1, got {getattr(getattr(cfg, section), name)!r}")
    if not cfg.task.levels or not all(isinstance(v, int) and 1 <= v <= 8 for v in cfg.task.levels + cfg.task.warmup_levels):
        raise ConfigError(f"{source}: task.levels and task.warmup_levels must be non-empty lists of integers 1..8")
    if cfg.rl.reward != "rules":
        if cfg.rl.reward_fn:
            raise ConfigError(f"{source}: rl.reward_fn replaces the task reward; it cannot be combined with "
                              f"rl.reward={cfg.rl.reward}")
        reasons = ("not_equal", "no_answer", "parse_error", "timeout")
        if not set(cfg.judge.undecided_reasons) <= set(reasons):
            raise ConfigError(f"{source}: judge.undecided_reasons must be drawn from the rule verdicts {reasons}, "
                              f"got {cfg.judge.undecided_reasons}")
        needed = ("url", "model") if cfg.judge.backend == "http" else ("model",)
        missing = [f"judge.{k}" for k in needed if not getattr(cfg.judge, k)]
        if missing:
            raise ConfigError(f"{source}: rl.reward={cfg.rl.reward} with judge.backend={cfg.judge.backend} needs "
                              f"{' and '.join(missing)}")
    if not cfg.validate.test_agreement > 0.5:
        raise ConfigError(f"{source}: validate.test_agreement must be > 0.5 (a unique majority), "
                          f"got {cfg.validate.test_agreement!r}")
    if not set(cfg.curate.drop_types) <= set(QUESTION_TYPES):
        raise ConfigError(f"{source}: curate.drop_types must be a list drawn from {QUESTION_TYPES}, "
                          f"got {cfg.curate.drop_types}")
    if not cfg.task.vision_tasks or not set(cfg.task.vision_tasks) <= set(VISION_TASKS):
        raise ConfigError(f"{source}: task.vision_tasks must be a non-empty list of {VISION_TASKS}")
    if cfg.rl.reference_logprobs == "engine" and cfg.rl.train_stale_tokens:
        raise ConfigError(f"{source}: rl.reference_logprobs=engine cannot be combined with rl.train_stale_tokens: "
                          "the engine's log-probs of stale tokens are those of older policies, not theta_i's")
    if cfg.distributed.backend == "ray" and (cfg.rollout.engine != "hf" or cfg.rollout.colocate):
        raise ConfigError(f"{source}: the Ray backend's rollout workers run the hf engine, not colocated; "
                          "rollout.engine=vllm and rollout.colocate need distributed.backend=local")
    if cfg.task.generated == "vision" and cfg.distributed.backend == "ray":
        raise ConfigError(f"{source}: the Ray backend's rollout workers take text prompts only; run vision tasks "
                          "with distributed.backend=local")
    weights = cfg.long2short.merge_weights
    if not weights or not all(isinstance(w, (int, float)) and 0 <= w <= 1 for w in weights):
        raise ConfigError(f"{source}: long2short.merge_weights must be a non-empty list of numbers in [0, 1], "
                          f"got {weights!r}")
    if cfg.model.hidden_size % cfg.model.num_heads:
        raise ConfigError(f"{source}: model.hidden_size must be a multiple of model.num_heads")
    if cfg.rl.repeat_window_tokens and not 1 <= cfg.rl.repeat_max_period_tokens <= cfg.rl.repeat_window_tokens // 2:
        raise ConfigError(f"{source}: rl.repeat_max_period_tokens must lie in [1, rl.repeat_window_tokens // 2]")
    if cfg.rl.samples_per_prompt < 2:
        raise ConfigError(f"{source}: rl.samples_per_prompt must be >= 2 (the baseline is the mean of k samples)")
    batch = cfg.rl.prompts_per_iteration * cfg.rl.samples_per_prompt
    if batch % cfg.rl.minibatches:
        raise ConfigError(f"{source}: rl.minibatches ({cfg.rl.minibatches}) "
                          f"must divide prompts_per_iteration * samples_per_prompt ({batch})")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults <- YAML file <- `section.key=value` overrides, type-checked.

    Raises: ConfigError naming the file (or "command line") and the offending key.
    """
    merged = OmegaConf.structured(Config)
    source = "defaults"
    try:
        if path is not None:
            source = str(path)
            if not Path(path).is_file():
                raise ConfigError(f"{path}: config file not found")
            loaded = OmegaConf.load(path)
            merged = OmegaConf.merge(merged, loaded)
        if overrides:
            source = "command line"
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"command line: overrides must look like section.key=value, got {bad}")
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        first_line = str(err).splitlines()[0]
        raise ConfigError(f"{source}: {'key ' + repr(key) + ': ' if key else ''}{first_line}") from None
    except Exception as err:  # YAML syntax errors
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{source}: {type(err).__name__}: {err}") from None
    _validate(cfg, source)
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the fully resolved config as YAML (loadable again with `load_config`)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))


def describe(sections: tuple[str, ...]) -> str:
    """Help text listing every option of the given sections: key, default and meaning."""
    lines = []
    for section in sections:
        cls = {f.name: f.type for f in fields(Config)}[section]
        cls = globals()[cls] if isinstance(cls, str) else cls
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()
            lines.append(f"  {section}.{f.name}={default!s:<10} {f.metadata.get('help', '')}")
    return "\n".join(lines)
