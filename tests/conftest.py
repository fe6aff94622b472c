import contextlib
from pathlib import Path

import pytest
import torch
import transformers

from mirrorl.models.tiny import create_tiny_model

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()
torch.set_num_threads(1)  # toy-sized models: a second thread only waits on the first, and stalls on a busy machine


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A very small random Llama + character tokenizer (the demo architecture at toy width)."""
    return create_tiny_model(tmp_path_factory.mktemp("tiny"), hidden_size=32, num_layers=2, num_heads=2)


DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A file of the public data sets next to the repository; skips the test when that folder is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: put the public data sets in ../shared/data (see its README)")
    return path


@pytest.fixture(scope="session")
def sandbox():
    """A client of a sandbox service started on a free loopback port for the whole test session.

    Where the machine lacks the minimum isolation the service is started with --unsafe; tests that need a
    missing layer skip themselves (see `require_layers`).
    """
    from mirrorl.sandbox.client import SandboxClient, SandboxError, local_service
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(local_service())
        except SandboxError as err:
            if "below the minimum" not in str(err):
                raise
            url = stack.enter_context(local_service("--unsafe"))
        yield stack.enter_context(SandboxClient(url))


def require_layers(client, *names: str) -> None:
    layers = client.health()["layers"]
    missing = [name for name in names if not layers.get(name)]
    if missing:
        pytest.skip(f"isolation layers missing on this machine: {', '.join(missing)} (see `mirrorl sandbox serve`)")


def perturbed_policy(folder, scale: float = 0.05, seed: int = 1):
    """The policy in `folder` with Gaussian noise of std `scale` added to every weight (a stand-in for an
    optimizer update that weight-sync tests can tell apart from the original)."""
    from mirrorl.models.loading import load_policy
    model, _ = load_policy(folder)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model
