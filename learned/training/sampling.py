"""The data a training run draws, as a pure function of ``(seed, step)``, and the global RNG state.

- :func:`recipe_dataset`: ``learned.data.build_dataset`` with the recipe's augmentation.
- :class:`StepBatchSampler`: batch ``s`` is the ``(index, sample_seed)`` list of ``(seed, s)``; the
  sample order is a permutation per epoch drawn from ``(seed, epoch)``.
- :class:`SeededSamples`: indexes a dataset by ``(index, sample_seed)``: datasets of
  :mod:`learned.data` take the key themselves, any other is called with the global torch / NumPy /
  ``random`` RNGs seeded by the sample seed (:func:`seeded_global_rngs`, restored afterwards).
- :func:`collate_samples`, :func:`to_device`: a batch from samples, and onto the device.
- :func:`rng_state`, :func:`set_rng_state`: the global RNG states as tensors and lists (a training
  checkpoint loads with ``torch.load(weights_only=True)``).

So batches do not depend on worker processes or on where a run was interrupted, and the sampler has
no state to save (its seed and next step are stored in the checkpoint for the record). Datasets of
:mod:`learned.data` draw crops and augmentation (flips, IFAN's noise / grayscale / rescale) from a
generator seeded by the key. The global RNG states are saved in the checkpoint as well.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from .recipes import AugmentConfig

__all__ = [
    "recipe_dataset",
    "step_loader",
    "derive_seed",
    "StepBatchSampler",
    "seeded_global_rngs",
    "SeededSamples",
    "collate_samples",
    "to_device",
    "rng_state",
    "set_rng_state",
]


def recipe_dataset(spec: str, split: str, *, crop: Optional[int], augment: Optional[AugmentConfig], seed: int) -> Dataset:
    """``learned.data.build_dataset`` with the recipe's augmentation (None: no augmentation)."""
    from ..data import IFANAugmentation, build_dataset

    ifan = None
    if augment is not None and (augment.noise_prob > 0 or augment.grayscale_prob > 0 or augment.rescale_prob > 0):
        ifan = IFANAugmentation(noise_prob=augment.noise_prob, noise_sigma=tuple(augment.noise_sigma),
                                grayscale_prob=augment.grayscale_prob, rescale_prob=augment.rescale_prob,
                                rescale_range=tuple(augment.rescale_range))
    return build_dataset(spec, split, crop=crop, augment=bool(augment is not None and augment.flips_rot90),
                         seed=seed, ifan_augment=ifan)


def step_loader(dataset: Dataset, batch_size: int, seed: int, start_step: int, steps: int, ctx, num_workers: int,
                pin_memory: bool):
    """The ``DataLoader`` of steps ``start_step + 1 .. steps`` of this process (rank ``ctx.rank`` of
    ``ctx.world_size``): batch ``s`` a pure function of ``(seed, s)`` (:class:`StepBatchSampler`)."""
    from torch.utils.data import DataLoader

    sampler = StepBatchSampler(len(dataset), batch_size, seed, start_step, steps, ctx.rank, ctx.world_size)
    return DataLoader(SeededSamples(dataset), batch_sampler=sampler, collate_fn=collate_samples,
                      num_workers=num_workers, pin_memory=pin_memory, persistent_workers=False)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def derive_seed(*values: int) -> int:
    """A 63-bit seed from integers (NumPy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


class StepBatchSampler(Sampler):
    """Batches of ``(index, sample_seed)`` whose content is a pure function of ``(seed, step)``.

    Step ``s`` (1-based) uses positions ``(s - 1) G .. s G - 1`` of the endless sequence of
    epoch permutations (epoch ``e`` permuted by a generator seeded from ``(seed, e)``), with
    ``G = batch_size x world_size``; rank ``r`` takes the slots ``r b .. (r + 1) b - 1``. Each
    sample's seed is derived from ``(seed, s, slot)``. Resuming at step k is starting the sampler
    at k: there is no hidden state to restore.

    Parameters
    ----------
    dataset_size : int
    batch_size : int
        Per process.
    seed : int
    start_step, stop_step : int
        Yields the batches of steps ``start_step + 1 .. stop_step``.
    rank, world_size : int
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int, start_step: int, stop_step: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if dataset_size < 1:
            raise ValueError(f"the training dataset is empty (dataset_size={dataset_size})")
        self.n, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.start_step, self.stop_step = start_step, stop_step
        self.rank, self.world_size = rank, world_size
        self._epoch: Optional[int] = None
        self._perm: Optional[torch.Tensor] = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, 1, epoch))
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def batch(self, step: int) -> List[Tuple[int, int]]:
        """The ``(index, sample_seed)`` list of this rank at 1-based ``step``."""
        global_batch = self.batch_size * self.world_size
        out = []
        for slot in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
            position = (step - 1) * global_batch + slot
            index = int(self._permutation(position // self.n)[position % self.n])
            out.append((index, derive_seed(self.seed, 2, step, slot)))
        return out

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for step in range(self.start_step + 1, self.stop_step + 1):
            yield self.batch(step)

    def __len__(self) -> int:
        return self.stop_step - self.start_step


@contextlib.contextmanager
def seeded_global_rngs(seed: int):
    """Seed torch / NumPy / ``random`` global RNGs with ``seed`` inside, restore them after."""
    torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)
        random.setstate(py_state)


class SeededSamples(Dataset):
    """Wraps a dataset so ``wrapper[(index, seed)]`` is a pure function of ``(index, seed)``.

    Datasets of :mod:`learned.data` take the key ``(index, sample_seed)`` themselves (their crops
    and augmentation come from a generator seeded by it); any other dataset gets ``index`` and is
    called with the global torch / NumPy / ``random`` RNGs seeded by ``seed`` (then restored).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.takes_seeded_keys = _takes_seeded_keys(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]) -> dict:
        index, seed = key
        if self.takes_seeded_keys:
            sample = self.dataset[(index, seed)]
        else:
            with seeded_global_rngs(seed):
                sample = self.dataset[index]
        if not isinstance(sample, Mapping) or "input" not in sample or "target" not in sample:
            raise TypeError(
                f"dataset samples must be dicts with 'input' and 'target' tensors (and optional 'left', "
                f"'right', 'name'); sample {index} is {type(sample).__name__}"
                + (f" with keys {sorted(sample)}" if isinstance(sample, Mapping) else "")
            )
        return dict(sample)


def _takes_seeded_keys(dataset: Dataset) -> bool:
    try:
        from ..data import FileDataset, SyntheticDataset
    except ImportError:  # pragma: no cover
        return False
    return isinstance(dataset, (FileDataset, SyntheticDataset))


def collate_samples(samples: List[dict]) -> dict:
    keys = set(samples[0])
    for s in samples[1:]:
        if set(s) != keys:
            raise ValueError(f"samples of one batch have different keys: {sorted(keys)} vs {sorted(s)}")
    return default_collate(samples)


def rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
