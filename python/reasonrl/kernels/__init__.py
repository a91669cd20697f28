"""Triton kernels for the GRPO loss: per-token log-probs, entropy, KL and the clipped loss.

The kernels are being written; this package is importable as ``reasonrl.kernels`` from the
wheel so that the packaging test holds from the start.
"""
