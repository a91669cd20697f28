"""Triton kernels for the GRPO loss (filled by the kernels work).

Ships inside the wheel as ``reasonrl.kernels``: ``python/reasonrl/kernels`` is a symlink to this
folder, and maturin copies the files it points to.
"""
