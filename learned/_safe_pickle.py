"""Restricted unpicklers that rebuild NumPy arrays and refuse every other global (no pickled code runs).

Two users, on different floors of :mod:`learned`: :mod:`learned.training.checkpoints` reads KPAC's
TensorFlow ``.npz`` (:class:`NumpyOnlyUnpickler`) and :mod:`learned.metrics` the LPIPS weight file
(:func:`numpy_arrays_unpickler`). This module sits below both and imports nothing of the package.
"""

from __future__ import annotations

import importlib.util
import pickle
from typing import IO, Any

__all__ = ["NumpyOnlyUnpickler", "numpy_arrays_unpickler"]


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild NumPy arrays and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only NumPy arrays are allowed")


class _NumpyArraysUnpickler(NumpyOnlyUnpickler):
    ALLOWED = NumpyOnlyUnpickler.ALLOWED | {("_codecs", "encode")}
    REFUSAL = "only NumPy arrays are allowed"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: {self.REFUSAL}")
        if module.startswith("numpy.core.") and importlib.util.find_spec("numpy._core") is not None:
            module = "numpy._core." + module[len("numpy.core.") :]
        return pickle.Unpickler.find_class(self, module, name)


def numpy_arrays_unpickler(fh: IO[bytes], refusal: str = _NumpyArraysUnpickler.REFUSAL) -> pickle.Unpickler:
    """An unpickler that builds NumPy arrays (in dicts/lists) and refuses every other global.

    :class:`NumpyOnlyUnpickler` plus ``_codecs.encode``, which pickle protocol 2 uses to store an
    array's bytes (str -> bytes, runs no code); NumPy 1.x module paths are mapped to NumPy 2's
    ``numpy._core``. ``refusal`` ends the message of a refused global."""
    unpickler = _NumpyArraysUnpickler(fh)
    unpickler.REFUSAL = refusal
    return unpickler
