"""Prompt-set curation (report section 2.1): question-type rules, pass rates, answer-only guesses, tags, resume,
and the curated file read back by the samplers."""

import doctest
import json

import pytest
from conftest import shared_data

import mirrorl.curation.filters
import mirrorl.curation.tags
from mirrorl.cli import main
from mirrorl.config import ConfigError, load_config
from mirrorl.curation.filters import question_type
from mirrorl.curation.run import curate
from mirrorl.models.tiny import char_tokenizer
from mirrorl.rollout.engine import Segment
from mirrorl.sampling import make_sampler
from mirrorl.tasks.jsonl import load_problems
from mirrorl.tasks.problem import Problem


def test_doctests():
    assert doctest.testmod(mirrorl.curation.filters).failed == 0
    assert doctest.testmod(mirrorl.curation.tags).failed == 0


@pytest.mark.parametrize("prompt, answer, expected", [
    ("Which is larger?\nA. 2^10\nB. 10^3", "A", "multiple_choice"),
    (r"Pick one: $\textbf{(A)}\ 1 \qquad \textbf{(B)}\ 2$", "2", "multiple_choice"),
    ("True or false: every even number above 2 is a sum of two primes.", r"\text{True}", "true_false"),
    ("Is 91 prime? Answer yes or no.", "no", "true_false"),
    ("How many ways are there to answer a 10-question true/false test?", "1024", None),  # a counting problem
    ("Show that $n^2 - n$ is even for every integer $n$.", "-", "proof"),
    ("Find the area of the triangle [asy] label(\"(A)\", (0,0)); label(\"(B)\", (1,0)); [/asy]", "12", None),
    ("Compute $2 + 2$.", "4", None),
])
def test_question_types(prompt, answer, expected):
    assert question_type(Problem("x", prompt, answer)) == expected


def test_code_and_countdown_are_never_filtered():
    assert question_type(Problem("c", "Prove it in code. (A) (B)", "A", kind="code", meta={"tests": ["x"]})) is None


def test_math500_multiple_choice_rows_are_the_lettered_ones():
    problems = load_problems(shared_data("math500", "test.jsonl"))
    flagged = {p.id: (question_type(p), p.answer) for p in problems if question_type(p)}
    assert len(flagged) == 3
    assert all(kind == "multiple_choice" and answer.startswith(r"\text{(") for kind, answer in flagged.values())


class ScriptedEngine:
    """Answers prompt text -> the scripted responses in turn (cycling); counts the prompts it was asked."""

    policy_version = 0

    def __init__(self, tokenizer, script: dict[str, list[str]]):
        self.tokenizer, self.script, self.asked, self.turn = tokenizer, script, [], {}

    def generate(self, prompts, sampling, prefixes=None):
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            self.asked.append(text)
            n = self.turn[text] = self.turn.get(text, -1) + 1
            response = self.script[text][n % len(self.script[text])]
            if prefixes:  # an answer-only guess: the response was prefilled with "\boxed{"
                response = response.removeprefix("\\boxed{")
            out.append(Segment(ids, self.tokenizer(response, add_special_tokens=False)["input_ids"] + [2], "stop", 0))
        return out


PROBLEMS = [Problem("easy", "1+1=?\n", "2", level=1), Problem("mid", "4+5-3=?\n", "6", level=2),
            Problem("hard", "9-8+7-6=?\n", "2", level=3), Problem("guessable", "2+2=?\n", "4", level=1),
            Problem("choice", "which? (A) 1 (B) 2\n", "A")]  # a multiple-choice question
RIGHT, WRONG = "so \\boxed{{{}}}", "\\boxed{{{}}}"
SCRIPT = {
    "1+1=?\n": [RIGHT.format(2)] * 10,                                  # 10/10: too easy
    "4+5-3=?\n": [RIGHT.format(6)] * 6 + [WRONG.format(7)] * 4,        # 6/10
    "9-8+7-6=?\n": [WRONG.format(1)] * 9 + [RIGHT.format(2)],          # 1/10
    "2+2=?\n": [WRONG.format(5)] * 5 + [RIGHT.format(4)] * 5,          # 5/10 ...
}


def _curate(tmp_path, overrides=()):
    cfg = load_config(None, ["curate.guess_samples=8", "eval.batch_size=20", *overrides])  # 2 prompts per chunk
    tokenizer = char_tokenizer()
    engine = ScriptedEngine(tokenizer, SCRIPT)
    guesser = ScriptedEngine(tokenizer, {"4+5-3=?\n": ["\\boxed{7}"], "9-8+7-6=?\n": ["\\boxed{3}"],
                                         "2+2=?\n": ["\\boxed{5}"] * 7 + ["\\boxed{4}"]})  # ... and guessed on try 8
    summary = curate(cfg, PROBLEMS, tmp_path, (engine, tokenizer, "scripted"), (guesser, tokenizer, "guesser"))
    return summary, engine, guesser


def test_curate_drops_by_rule_pass_rate_and_guess(tmp_path):
    summary, engine, guesser = _curate(tmp_path)
    assert summary["dropped"] == {"multiple_choice": 1, "too_easy": 1, "answer_guessed": 1}
    assert len(engine.asked) == 4 * 10  # the multiple-choice prompt is never sampled
    assert len(guesser.asked) == 3 * 8  # the too easy one is not guessed at
    curated = load_problems(tmp_path / "curated.jsonl")
    assert {p.id: p.pass_rate for p in curated} == {"mid": 0.6, "hard": 0.1}
    assert curated[1].meta["tags"] == {"domain": "math", "subject": "arithmetic", "level": 3, "difficulty": "hard"}
    dropped = {row["id"]: row for row in map(json.loads, (tmp_path / "dropped.jsonl").read_text().splitlines())}
    assert dropped["guessable"]["guessed"] == 1 and dropped["easy"]["pass_rate"] == 1.0
    assert summary["pass_rate_histogram"]["6/10"] == {"kept": 1, "dropped": 0}
    assert summary["pass_rate_histogram"]["5/10"] == {"kept": 0, "dropped": 1}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["kept"] == 2 and (tmp_path / "pass_rate_histogram.png").stat().st_size > 1000
    assert "| too_easy | 1 |" in (tmp_path / "report.md").read_text()
    cfg = load_config(None, ["rl.sampler=curriculum", "rl.curriculum_switch_iteration=0"])
    sampler = make_sampler(cfg.rl, [p.level for p in curated], 0, [p.pass_rate for p in curated])
    assert set(sampler.sample(10, 0)) == {1}  # only "hard" (0.1 <= 0.5) is in the hard pool


def test_curate_resumes_and_recurates_without_sampling_again(tmp_path):
    _curate(tmp_path)
    lines = (tmp_path / "difficulty.jsonl").read_text().splitlines()
    (tmp_path / "difficulty.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])  # killed mid-write
    summary, engine, guesser = _curate(tmp_path, ["curate.max_pass_rate=0.55"])
    assert len(engine.asked) == 2 * 10 and len(guesser.asked) == 0  # 2 rows were complete, the rest resampled
    assert summary["sampled"] == {"pass_rate": 2, "answer_only": 0}
    assert summary["dropped"] == {"multiple_choice": 1, "too_easy": 2, "answer_guessed": 1}
    with pytest.raises(ConfigError, match="measured with other settings.*samples: 10 -> 4"):
        _curate(tmp_path, ["curate.samples=4"])


def test_curate_cli_with_the_tiny_model(tmp_path, tiny_model_dir):
    """The real engine path: random weights answer nothing right, so all prompts stay and none is guessed."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{i}+1=?", "answer": str(i + 1)}) + "\n" for i in range(5)))
    argv = ["curate", "--model", str(tiny_model_dir), "--data", str(data), "--limit", "4", "--out", str(tmp_path / "c"),
            "curate.samples=2", "curate.guess_samples=2", "curate.max_response_tokens=8", "run.threads=1"]
    assert main(argv) == 0
    rows = (tmp_path / "c" / "difficulty.jsonl").read_text().splitlines()
    assert len(rows) == 4 and all(len(json.loads(r)["correct"]) == 2 for r in rows)
    assert [p.pass_rate for p in load_problems(tmp_path / "c" / "curated.jsonl")] == [0.0] * 4
    assert main(argv) == 0  # resumed: nothing left to sample
    assert (tmp_path / "c" / "difficulty.jsonl").read_text().splitlines() == rows
    assert main(argv[:-1] + ["--limit", "0"]) == 2


def test_curate_without_data_takes_the_generated_pool(tmp_path, tiny_model_dir):
    assert main(["curate", "--model", str(tiny_model_dir), "--limit", "3", "--out", str(tmp_path), "curate.samples=2",
                 "curate.guess_samples=0", "curate.max_response_tokens=4", "run.threads=1"]) == 0
    curated = load_problems(tmp_path / "curated.jsonl")
    assert len(curated) == 3 and all(p.id.startswith("arith-") and p.meta["tags"]["subject"] == "arithmetic"
                                     for p in curated)
