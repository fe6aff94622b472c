"""Code problems (HumanEval, MBPP): a prompt, and tests that the sandbox runs on the response's code.

A code `Problem` has ``kind="code"`` and keeps in ``meta`` what a sandbox run request needs:
``tests`` (assert blocks), ``setup`` (run before the tests), ``entry_point`` (the function the tests
call) and ``prefix`` (code put before the response's code: the HumanEval signature and docstring, so a
response may give the whole function or only its body). The gold ``answer`` is the reference solution,
kept for inspection only; the reward comes from the tests (`mirrorl.rewards.code`).
"""

from __future__ import annotations

import re

from mirrorl.tasks.problem import DataError, Problem

INSTRUCTION = "\nAnswer with the complete Python code in one ```python code block."
_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_CALL = re.compile(r"\s*assert\s*\(?\s*(?:not\s+)?\(?\s*([A-Za-z_]\w*)\s*\(")


def extract_code(response: str) -> str | None:
    """The last complete fenced code block of `response` (```python ... ```), None when there is none.

    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```")
    'def f():\\n    return 1\\n'
    >>> extract_code("def f(): return 1") is None
    True
    """
    blocks = _FENCE.findall(response)
    return blocks[-1] if blocks else None


def _field(row: dict, name: str, where: str, kind: type = str):
    if not isinstance(row.get(name), kind):
        raise DataError(f"{where}: field '{name}' must be a {'string' if kind is str else 'list'}")
    return row[name]


def humaneval_problem(row: dict, where: str) -> Problem:
    """A HumanEval row (``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``).

    Raises: DataError naming `where` and the field when a field is not a string.
    """
    prompt, test, entry = (_field(row, k, where) for k in ("prompt", "test", "entry_point"))
    return Problem(id=str(row["task_id"]), prompt=f"Complete this Python function.\n```python\n{prompt}```{INSTRUCTION}",
                   answer=row.get("canonical_solution", ""), kind="code",
                   meta={"tests": [f"{test}\ncheck({entry})\n"], "entry_point": entry, "prefix": prompt + "\n",
                         "setup": ""})


def mbpp_problem(row: dict, where: str) -> Problem:
    """An MBPP row (``task_id``, ``text``, ``code``, ``test_list``, ``test_setup_code``); the first test is
    shown in the prompt, as in the MBPP paper, so the policy knows the function's name and signature.

    Raises: DataError naming `where` and the field when ``text`` is not a string or ``test_list`` is not a
        non-empty list of strings.
    """
    text, tests = _field(row, "text", where), _field(row, "test_list", where, list)
    if not tests or not all(isinstance(t, str) for t in tests):
        raise DataError(f"{where}: field 'test_list' must be a non-empty list of assert strings")
    call = _CALL.match(tests[0])
    return Problem(id=f"mbpp-{row['task_id']}", prompt=f"{text}\nYour code should pass this test:\n{tests[0]}{INSTRUCTION}",
                   answer=row.get("code", ""), kind="code",
                   meta={"tests": tests + list(row.get("challenge_test_list") or []),
                         "setup": row.get("test_setup_code") or "", "entry_point": call.group(1) if call else None,
                         "prefix": ""})
