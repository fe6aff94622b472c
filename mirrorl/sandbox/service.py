"""The sandbox as an HTTP + JSON service (FastAPI): ``POST /run`` judges one submission, ``GET /health``
reports the isolation layers; the OpenAPI schema is at ``/openapi.json`` (browsable at ``/docs``).

    mirrorl sandbox serve --host 127.0.0.1 --port 8080 [--workers N] [--python /usr/bin/python3] [--unsafe]

The layers are probed at start-up (`isolation.Sandbox.detect`) and printed; below the documented minimum
the service refuses to start unless ``--unsafe`` is given, and then says so loudly at start and on /health.
The service has no authentication: bind it to loopback or a private network.
"""

from __future__ import annotations

import contextlib
import sys

from fastapi import FastAPI
from pydantic import BaseModel

from mirrorl.sandbox.isolation import MINIMUM, Sandbox
from mirrorl.sandbox.runner import RunRequest, judge
from mirrorl.sandbox.verdicts import RunResult


class SandboxUnavailable(RuntimeError):
    """The machine lacks the minimum isolation and ``--unsafe`` was not given."""


class Health(BaseModel):
    status: str = "ok"
    unsafe: bool
    isolation: str
    layers: dict[str, bool]
    missing: list[str]
    notes: list[str]
    python: str
    python_version: str
    workers: int
    user: int


def create_app(sandbox: Sandbox, unsafe: bool = False) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        sandbox.close()  # uvicorn re-raises SIGTERM after shutdown, so this is the last chance to clean up

    app = FastAPI(title="mirrorl sandbox", version="1", lifespan=lifespan,
                  description="Runs Python submissions against assert tests or stdin/stdout cases in isolation.")

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        return Health(unsafe=unsafe, **sandbox.health())

    @app.post("/run", response_model=RunResult)
    async def run(request: RunRequest) -> RunResult:
        return await judge(sandbox, request)

    return app


def serve(host: str = "127.0.0.1", port: int = 8080, workers: int | None = None, python: str | None = None,
          unsafe: bool = False) -> None:
    """Probe the isolation layers, print them, and serve until interrupted."""
    import os

    import uvicorn

    sandbox = Sandbox.detect(python=python, workers=workers or os.cpu_count() or 1)
    print(sandbox.describe(), file=sys.stderr, flush=True)
    if sandbox.missing and not unsafe:
        sandbox.close()
        raise SandboxUnavailable(f"isolation below the minimum ({', '.join(MINIMUM)}): missing "
                                 f"{', '.join(sandbox.missing)}; fix that or start with --unsafe")
    if sandbox.missing:
        print("\n" + "!" * 78 + f"\n!! UNSAFE: running submissions WITHOUT {', '.join(sandbox.missing)}.\n"
              "!! Untrusted code can reach this machine. Use only with code you trust.\n" + "!" * 78 + "\n",
              file=sys.stderr, flush=True)
    print(f"sandbox: serving on http://{host}:{port} (OpenAPI schema at /openapi.json)", file=sys.stderr, flush=True)
    try:
        uvicorn.run(create_app(sandbox, unsafe=bool(sandbox.missing)), host=host, port=port, log_level="warning")
    finally:
        sandbox.close()
