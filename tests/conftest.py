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
