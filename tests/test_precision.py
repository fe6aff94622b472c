"""`run.precision=auto`: bf16 autocast only where the device runs bf16 natively."""

import pytest
import torch

from mirrorl.trainer import precision
from mirrorl.trainer.precision import autocast, resolve_precision


def _matmul_dtype(setting: str) -> torch.dtype:
    with autocast(setting, "cpu"):
        return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_native_bf16_support(monkeypatch, native):
    monkeypatch.setattr(precision, "bf16_supported", lambda device_type: native)
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert _matmul_dtype("auto") == (torch.bfloat16 if native else torch.float32)


def test_explicit_settings_are_kept(monkeypatch):
    monkeypatch.setattr(precision, "bf16_supported", lambda device_type: False)
    assert resolve_precision("bf16", "cpu") == "bf16" and _matmul_dtype("bf16") == torch.bfloat16
    assert resolve_precision("fp32", "cpu") == "fp32" and _matmul_dtype("fp32") == torch.float32


def test_cpu_support_matches_onednn():
    assert precision.bf16_supported("cpu") == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert precision.bf16_supported("meta") is False
