"""spconv on CPU-only torch: a shim for its backward pass, and one thread for its CPU kernels.

spconv 2.3.8 (the CPU wheel from PyPI) asks ``torch.cuda.current_stream()`` for a stream in
its backward pass before it looks at where the tensors are. On a torch built without CUDA
that raises ``AssertionError: Torch not compiled with CUDA enabled`` (the family of
traveller59/spconv issue #366), so training on the CPU fails although spconv's own CPU
gather-matmul-scatter backward works. :func:`ensure_cpu_backward` makes
``get_current_stream`` answer 0 (spconv's "no stream") when CUDA is absent, in the modules
that imported it by name. With a CUDA build of torch nothing is changed.
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


class single_thread_on_cpu:
    """Context manager: torch uses one intra-op thread while it is active, on CPU only.

    Measured here with spconv 2.3.8 (CPU wheel) and torch 2.13.0: the sparse backbone's
    output on one KITTI-sized sweep differs from run to run by up to 3.4 (activations up to
    32) when torch has two intra-op threads, and is bit-identical with one; the same frame
    then gets different boxes and scores in-process and in worker processes. The detector
    runs its sparse convolutions inside this context so pre-labels are reproducible. On a
    GPU (``device.type == "cuda"``) nothing changes.
    """

    def __init__(self, device: Any) -> None:
        import torch

        self._active = torch.device(device).type == "cpu"
        self._previous = 1

    def __enter__(self) -> "single_thread_on_cpu":
        import torch

        if self._active:
            self._previous = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self._active:
            torch.set_num_threads(self._previous)
