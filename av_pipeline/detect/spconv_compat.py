"""spconv on CPU-only torch: a shim for its backward pass.

spconv 2.3.8 (the CPU wheel from PyPI) asks ``torch.cuda.current_stream()`` for a stream in
its backward pass before it looks at where the tensors are. On a torch built without CUDA
that raises ``AssertionError: Torch not compiled with CUDA enabled`` (the family of
traveller59/spconv issue #366), so training on the CPU fails although spconv's own CPU
gather-matmul-scatter backward works. :func:`ensure_cpu_backward` makes
``get_current_stream`` answer 0 (spconv's "no stream") when CUDA is absent, in the modules
that imported it by name. With a CUDA build of torch nothing is changed.

spconv's CPU forward kernels also race with more than one torch thread; inference on the
CPU therefore uses :mod:`av_pipeline.detect.sparse_cpu` instead of spconv's kernels.
"""

from __future__ import annotations

from typing import Any

_PATCHED_MODULES = ("spconv.pytorch.cppcore", "spconv.pytorch.ops", "spconv.pytorch.hash")


def _null_stream() -> int:
    return 0


def ensure_cpu_backward() -> bool:
    """Patch spconv's stream lookup when torch has no CUDA; idempotent.

    Returns:
        ``True`` when the shim is active (CPU-only torch), ``False`` when CUDA is available
        and spconv is left as it is.
    """
    import importlib

    import torch

    if torch.cuda.is_available():
        return False
    for name in _PATCHED_MODULES:
        module: Any = importlib.import_module(name)
        if hasattr(module, "get_current_stream"):
            module.get_current_stream = _null_stream
    return True
