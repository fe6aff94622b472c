"""Reward of a code problem: the response's code block run against the problem's tests in the sandbox.

The sandbox (`mirrorl.sandbox`, report sections 2.3.5 and 2.6.4) is reached at the URL in the
``MIRRORL_SANDBOX_URL`` environment variable, or else a service started on loopback the first time a
code problem is scored and stopped when the process exits. The verdict's reason is the sandbox verdict
(``accepted``, ``wrong_answer``, ``runtime_error``, ``time_limit``, ...), or ``no_answer`` when the
response has no complete code block.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading

from mirrorl.rewards.math import Verdict
from mirrorl.tasks.code import extract_code
from mirrorl.tasks.problem import Problem

_lock = threading.Lock()
_client = None


def sandbox_client():
    """The process's sandbox client (created on first use; see the module docstring).

    Raises: mirrorl.sandbox.client.SandboxError when a local service cannot be started.
    """
    global _client
    with _lock:
        if _client is None:
            from mirrorl.sandbox.client import SandboxClient, local_service
            url = os.environ.get("MIRRORL_SANDBOX_URL")
            if not url:
                stack = contextlib.ExitStack()
                url = stack.enter_context(local_service())
                atexit.register(stack.close)
            _client = SandboxClient(url)
        return _client


def verify_code(problem: Problem, response: str, client=None) -> Verdict:
    """Judge `response` to a code `problem`: its last ```python block, after ``meta["prefix"]``, must pass
    every test in ``meta["tests"]``. `client` defaults to `sandbox_client()`.

    Raises: mirrorl.sandbox.client.SandboxError when the service cannot be reached after its retries.
    """
    code = extract_code(response)
    if code is None:
        return Verdict(False, "no_answer", None)
    meta = problem.meta
    result = (client or sandbox_client()).run({
        "code": meta.get("prefix", "") + code, "tests": meta["tests"], "setup": meta.get("setup", ""),
        "entry_point": meta.get("entry_point"),
    })
    return Verdict(result.passed, result.verdict.value, code)
