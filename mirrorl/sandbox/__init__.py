"""The code-execution sandbox: run untrusted Python submissions against tests and judge them.

The reward service for code problems (Kimi k1.5 report, sections 2.3.5 and 2.6.4): an HTTP service
(`service.py`, started with ``mirrorl sandbox serve``) that runs each submission in isolation
(`isolation.py`), against assert tests through an integrity-guarded harness (`harness.py`) or against
stdin/stdout cases (`compare.py`), and answers with a verdict per test and a binary reward
(`verdicts.py`, `runner.py`). `client.py` talks to it with timeouts and retries, and can start one on
loopback.

What each isolation layer covers and does not cover is in `isolation.py`; what the assert harness
guards against, and what it does not, is in `harness.py`.
"""

from mirrorl.sandbox.isolation import Limits
from mirrorl.sandbox.runner import RunRequest, StdioTest
from mirrorl.sandbox.verdicts import RunResult, TestResult, Verdict, reward

__all__ = ["Limits", "RunRequest", "RunResult", "StdioTest", "TestResult", "Verdict", "reward"]
