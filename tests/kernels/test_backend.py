"""backend= resolution, and the package without triton (macOS, Windows) or without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from reasonrl.errors import InvalidInputError
from reasonrl.kernels import _backend


def test_auto_picks_torch_on_cpu_tensors():
    assert _backend.resolve_backend("auto", torch.zeros(1)) == "torch"
    assert _backend.resolve_backend("torch", torch.zeros(1)) == "torch"


def test_unknown_backend_is_invalid_input():
    with pytest.raises(InvalidInputError, match="`backend`"):
        _backend.resolve_backend("cuda", torch.zeros(1))


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | env
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=environment, capture_output=True, text=True,
        timeout=120,
    )


def test_everything_but_triton_works_without_triton():
    result = run_python(
        """
        import sys
        sys.modules["triton"] = None  # as on a platform without triton wheels
        import torch
        from reasonrl.errors import InvalidInputError
        from reasonrl.kernels import linear_grpo_loss, token_logprobs
        logits = torch.randn(2, 5, 50, requires_grad=True)
        targets = torch.randint(0, 50, (2, 5))
        token_logprobs(logits, targets).sum().backward()
        hidden = torch.randn(2, 5, 8, requires_grad=True)
        weight = torch.randn(50, 8, requires_grad=True)
        loss, _ = linear_grpo_loss(hidden, weight, targets, None, None, torch.randn(2), torch.ones(2, 5))
        loss.backward()
        try:
            token_logprobs(logits, targets, backend="triton")
        except InvalidInputError as error:
            print("refused:", error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "refused: invalid `backend`: 'triton' asked for, but triton is not installed" in result.stdout


def test_triton_on_cpu_tensors_needs_the_interpreter():
    pytest.importorskip("triton")
    if torch.cuda.is_available():
        pytest.skip("with a GPU, auto picks triton for CUDA tensors")
    result = run_python(
        """
        import torch
        from reasonrl.kernels import token_logprobs
        token_logprobs(torch.randn(3, 10), torch.zeros(3, dtype=torch.long), backend="triton")
        """
    )
    assert result.returncode != 0 and "TRITON_INTERPRET=1" in result.stderr
