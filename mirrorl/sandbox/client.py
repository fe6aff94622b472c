"""A Python client for the sandbox service, with timeouts and retries, and a local service for tests and runs.

    with local_service() as url:                      # starts `mirrorl sandbox serve` on a free loopback port
        client = SandboxClient(url)
        result = client.run({"code": "def f(x): return x", "tests": ["assert f(1) == 1"]})
        result.verdict, result.reward                 # Verdict.accepted, 1.0

A request that fails to connect, times out or gets a 5xx answer is retried with exponential back-off
(running a submission twice is harmless); a 4xx answer (an invalid request) is raised at once.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from mirrorl.sandbox.runner import RunRequest
from mirrorl.sandbox.verdicts import RunResult


class SandboxError(RuntimeError):
    """The service could not be reached, or refused the request."""


class SandboxClient:
    """Talks to one sandbox service; thread-safe (share one client between threads)."""

    def __init__(self, url: str, timeout_s: float = 120.0, retries: int = 3, backoff_s: float = 0.5):
        self.url, self.retries, self.backoff_s = url.rstrip("/"), retries, backoff_s
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

    def health(self) -> dict:
        return self._request("GET", "/health")

    def run(self, request: RunRequest | dict) -> RunResult:
        body = request.model_dump() if isinstance(request, RunRequest) else request
        return RunResult.model_validate(self._request("POST", "/run", json=body))

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _request(self, method: str, path: str, **kwargs) -> dict:
        error = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as err:  # connection refused or reset, timeouts
                error = f"{type(err).__name__}: {err}"
                continue
            if response.status_code >= 500:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:
                raise SandboxError(f"{self.url}{path}: HTTP {response.status_code}: {response.text[:500]}")
            return response.json()
        raise SandboxError(f"{self.url}{path}: no answer after {self.retries + 1} tries ({error})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_service(*extra_args: str, startup_timeout_s: float = 60.0):
    """Start ``mirrorl sandbox serve`` on a free loopback port; yield its URL; stop it on exit."""
    port = free_port()
    command = [sys.executable, "-m", "mirrorl.cli", "sandbox", "serve", "--port", str(port), *extra_args]
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise SandboxError(f"the sandbox service did not start: {log.read().strip()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SandboxError(f"the sandbox service did not answer on {url} within {startup_timeout_s:g} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
