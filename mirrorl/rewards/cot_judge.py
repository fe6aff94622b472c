"""Chain-of-thought reward model (report section 2.3.5): a judge model reads (question, reference answer, response),
reasons step by step, and ends with a JSON verdict ``{"correct": true | false}``.

The report fine-tunes its own model as this judge and uses it for RL on math; here any chat model serves: a local
Hugging Face model through the rollout engine (`HFJudge`), or an OpenAI-compatible endpoint
(``POST {url}/v1/chat/completions``, `HTTPJudge`). `CoTJudge` adds what RL needs around either:

* **strict parsing** (`parse_verdict`): the reply must end with a JSON object whose ``correct`` is a JSON boolean;
  anything else is a ``parse_error`` verdict, counted, with reward 0 (never a silent pass);
* **a cache** keyed by the SHA-256 of (judge name, full judge prompt), kept in memory and appended to a jsonl file,
  so a repeated response, a resumed run or a rerun costs no judge call; parse errors are cached too (with a
  temperature of 0 the judge would only repeat them);
* **batching**: every uncached prompt of a call goes to the backend at once (engine batches, or concurrent requests).

`JudgedRewards` combines it with the rule-based verifier (``rl.reward``): ``judge`` sends every math response to
the judge; ``rules_then_judge`` scores with the rules first and asks the judge only where they cannot decide (a
rule verdict whose reason is in ``judge.undecided_reasons``: by default ``parse_error`` and ``timeout``; add
``not_equal`` to let the judge overturn the rules' negatives). Code and Countdown problems are always judged by
their rules (the sandbox, the exact checker). How the report combines rules and its reward model for math is not
stated.

Not covered: the judge is not fine-tuned here, and its accuracy is whatever the chosen model gives (the report
spot-checked 98.5% for its CoT RM); a judge can be talked into a verdict by a response that addresses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from mirrorl.eval.evaluate import encode_prompt
from mirrorl.models.loading import load_policy
from mirrorl.rewards import score
from mirrorl.rewards.math import Verdict
from mirrorl.rollout.engine import SamplingParams
from mirrorl.rollout.hf import HFEngine
from mirrorl.tasks.problem import Problem

PROMPT = """You are grading a response to a math question. Decide whether the final answer of the response is \
mathematically equivalent to the reference answer (equivalent forms count as correct; a missing or different \
final answer is incorrect). Think step by step, then end your reply with one line of JSON and nothing after it: \
{{"correct": true}} or {{"correct": false}}.

Question:
{question}

Reference answer:
{reference}

Response:
{response}
"""
MODES = ("rules", "judge", "rules_then_judge")


class JudgeError(RuntimeError):
    """The judge endpoint could not be reached or refused the request after its retries."""


def parse_verdict(reply: str) -> bool | None:
    """The verdict a judge reply ends with: the value of ``correct`` in the JSON object that closes the reply
    (optionally followed by a closing code fence), or None when there is no such object or ``correct`` is not a
    JSON boolean.

    >>> parse_verdict('The answers agree: 1/2 = 0.5.\\n{"correct": true}')
    True
    >>> parse_verdict('```json\\n{"correct": false, "why": {"step": 2}}\\n```')
    False
    >>> parse_verdict('{"correct": true} but on reflection no'), parse_verdict('{"correct": "yes"}')
    (None, None)
    """
    decoder = json.JSONDecoder()
    position = len(reply)
    while (position := reply.rfind("{", 0, position)) >= 0:
        try:
            value, end = decoder.raw_decode(reply, position)
        except json.JSONDecodeError:
            continue
        if reply[end:].strip().removesuffix("```").strip():
            continue  # text follows: an object nested in the verdict, or a reply that does not end with one
        return value.get("correct") if isinstance(value, dict) and isinstance(value.get("correct"), bool) else None
    return None


class HTTPJudge:
    """An OpenAI-compatible chat endpoint: ``POST {url}/v1/chat/completions`` with one user message per prompt.

    Args:
        url: the server root, e.g. ``http://127.0.0.1:8000`` (``/v1/chat/completions`` is appended).
        model: the model name sent in each request (also the cache's judge name).
        api_key: sent as ``Authorization: Bearer ...`` when not empty.
        temperature, max_tokens: sampling of the judge's reply (max_tokens in tokens).
        timeout_s: seconds per request; concurrency: requests in flight; retries: extra tries on connection
            errors, timeouts and 5xx answers (exponential back-off from 0.5 s).
    """

    def __init__(self, url: str, model: str, api_key: str = "", temperature: float = 0.0, max_tokens: int = 1024,
                 timeout_s: float = 120.0, concurrency: int = 8, retries: int = 3):
        self.name, self.temperature, self.max_tokens = model, temperature, max_tokens
        self.concurrency, self.retries = concurrency, retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/") + "/v1/chat/completions"
        self._http = httpx.Client(timeout=timeout_s, headers=headers)

    def complete(self, prompts: list[str]) -> list[str]:
        """One reply per prompt, in order. Raises: JudgeError after the retries, or on a 4xx answer."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._one, prompts))

    def _one(self, prompt: str) -> str:
        body = {"model": self.name, "messages": [{"role": "user", "content": prompt}],
                "temperature": self.temperature, "max_tokens": self.max_tokens}
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(0.5 * 2 ** (attempt - 1))
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TransportError as err:
                error = f"{type(err).__name__}: {err}"
                continue
            if response.status_code >= 500:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:
                raise JudgeError(f"{self.url}: HTTP {response.status_code}: {response.text[:500]}")
            try:
                content = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise JudgeError(f"{self.url}: not a chat completion: {response.text[:300]}") from None
            return content if isinstance(content, str) else ""
        raise JudgeError(f"{self.url}: no answer after {self.retries + 1} tries ({error})")


class HFJudge:
    """A local Hugging Face model as judge, through a rollout engine (`mirrorl.rollout.hf.HFEngine`), batched.

    Args:
        engine, tokenizer: the judge model's engine and tokenizer.
        name: the cache's judge name (e.g. the model folder).
        temperature, max_tokens: sampling of the reply (0 = greedy; tokens).
        chat_template: wrap each prompt in the tokenizer's chat template (instruction-tuned judges).
    """

    def __init__(self, engine, tokenizer, name: str, temperature: float = 0.0, max_tokens: int = 1024,
                 chat_template: bool = False):
        self.engine, self.tokenizer, self.name = engine, tokenizer, name
        self.temperature, self.max_tokens, self.chat_template = temperature, max_tokens, chat_template

    def complete(self, prompts: list[str]) -> list[str]:
        ids = [encode_prompt(self.tokenizer, p, self.chat_template) for p in prompts]
        segments = self.engine.generate(ids, SamplingParams(self.temperature, 1.0, self.max_tokens))
        return [self.tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in segments]


class CoTJudge:
    """Judge (question, reference, response) triples with a backend (`HTTPJudge`, `HFJudge`), cached and counted.

    Args:
        backend: has ``name`` and ``complete(prompts) -> replies``.
        cache_path: jsonl file of cached verdicts (read at start, appended to); None = memory only.
    Attributes:
        stats: running counts ``calls`` (backend replies), ``cache_hits``, ``parse_errors``, ``correct``.
    """

    def __init__(self, backend, cache_path: str | Path | None = None):
        self.backend, self.cache_path = backend, Path(cache_path) if cache_path else None
        self.cache: dict[str, bool | None] = {}
        self.stats = {"calls": 0, "cache_hits": 0, "parse_errors": 0, "correct": 0}
        self._lock = threading.Lock()
        if self.cache_path and self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.cache[row["key"]] = row["correct"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut off by a kill; it is judged again

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.backend.name}\0{prompt}".encode()).hexdigest()

    def judge(self, questions: list[str], references: list[str], responses: list[str]) -> list[Verdict]:
        """Verdicts for aligned lists: reason ``judge_equal``, ``judge_not_equal`` or ``parse_error`` (correct is
        False), ``extracted`` is None. Uncached prompts go to the backend in one batch.

        Raises: JudgeError from `HTTPJudge` when the endpoint fails.
        """
        prompts = [PROMPT.format(question=q, reference=r, response=s) for q, r, s in zip(questions, references, responses)]
        keys = [self._key(p) for p in prompts]
        todo = list(dict.fromkeys(k for k in keys if k not in self.cache))  # each new prompt once
        if todo:
            by_key = dict(zip(keys, prompts))
            replies = self.backend.complete([by_key[k] for k in todo])
            new = {k: parse_verdict(reply) for k, reply in zip(todo, replies)}
            with self._lock:
                self.cache.update(new)
                self.stats["calls"] += len(todo)
                if self.cache_path:
                    self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                    with open(self.cache_path, "a") as f:
                        f.write("".join(json.dumps({"key": k, "correct": new[k], "reply": reply[-2000:]}) + "\n"
                                        for k, reply in zip(todo, replies)))
        verdicts = []
        for k in keys:
            value = self.cache[k]
            verdicts.append(Verdict(bool(value), "parse_error" if value is None else
                                    "judge_equal" if value else "judge_not_equal", None))
        with self._lock:
            self.stats["cache_hits"] += len(keys) - len(todo)
            self.stats["parse_errors"] += sum(v.reason == "parse_error" for v in verdicts)
            self.stats["correct"] += sum(v.correct for v in verdicts)
        return verdicts

    def pop_stats(self) -> dict[str, int]:
        """The counts since the last call, as ``judge/<name>`` metrics; resets them."""
        with self._lock:
            out, self.stats = {f"judge/{k}": v for k, v in self.stats.items()}, dict.fromkeys(self.stats, 0)
        return out


class JudgedRewards:
    """Rewards of a batch by rules, judge, or rules then judge (see the module docstring).

    Args:
        judge: a `CoTJudge`.
        mode: ``judge`` or ``rules_then_judge``.
        undecided: rule verdict reasons the judge re-decides in ``rules_then_judge``.
    """

    def __init__(self, judge: CoTJudge, mode: str, undecided: tuple[str, ...] = ("parse_error", "timeout")):
        if mode not in MODES[1:]:
            raise ValueError(f"mode must be one of {MODES[1:]}, got {mode!r}")
        self.judge, self.mode, self.undecided = judge, mode, tuple(undecided)

    def __call__(self, problems: list[Problem], responses: list[str]) -> list[Verdict]:
        """One verdict per (problem, response); the reward is ``float(verdict.correct)``."""
        verdicts: list[Verdict | None] = []
        for p, r in zip(problems, responses):
            if p.kind != "math":
                verdicts.append(score(p, r))
            elif self.mode == "judge":
                verdicts.append(None)
            else:
                v = score(p, r)
                verdicts.append(None if v.reason in self.undecided else v)
        ask = [i for i, v in enumerate(verdicts) if v is None]
        if ask:
            judged = self.judge.judge([problems[i].prompt for i in ask], [problems[i].answer for i in ask],
                                      [responses[i] for i in ask])
            for i, v in zip(ask, judged):
                verdicts[i] = v
        return verdicts


def make_judged_rewards(cfg, run_dir: str | Path) -> JudgedRewards | None:
    """The `JudgedRewards` that ``rl.reward`` and ``judge.*`` ask for, None for ``rl.reward=rules``. The cache is
    ``judge.cache`` or ``RUN_DIR/judge_cache.jsonl``; the API key is read from the environment variable named by
    ``judge.api_key_env``.

    Raises: mirrorl.models.loading.ModelLoadError for a bad ``judge.model`` folder (backend hf).
    """
    if cfg.rl.reward == "rules":
        return None
    j = cfg.judge
    if j.backend == "http":
        backend = HTTPJudge(j.url, j.model, os.environ.get(j.api_key_env, "") if j.api_key_env else "",
                            j.temperature, j.max_tokens, j.timeout_s, j.concurrency)
    else:
        model, tokenizer = load_policy(j.model, device=cfg.run.device)
        backend = HFJudge(HFEngine.from_config(model, tokenizer, cfg), tokenizer, j.model, j.temperature,
                          j.max_tokens, j.chat_template)
    cache = j.cache or Path(run_dir) / "judge_cache.jsonl"
    return JudgedRewards(CoTJudge(backend, cache), cfg.rl.reward, tuple(j.undecided_reasons))
