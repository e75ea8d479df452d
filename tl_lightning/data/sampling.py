"""Which items go into which batch, in which order, and where a resumed epoch starts.

- ``EpochSampler``: indices shuffled by ``epoch_seed(seed, epoch)``, so a resumed epoch has the
  order of the interrupted one (under DDP Lightning swaps in its ``DistributedSampler``).
- ``BucketBatchSampler``: length bucketing. The sampler's order is cut into mega-batches of
  ``batch_size * bucket_batches``, each sorted by length and split into batches, and the batch
  order is shuffled again; so batches hold similar lengths and padding stays small.
- ``ResumableDataLoader``: knows its position in the epoch. Lightning saves its ``state_dict()``
  (epoch and batches yielded) in every checkpoint and loads it on resume; the loader then skips,
  without loading them, the batches already trained on.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """One RNG seed per (seed, epoch) pair (``seed + epoch`` would give seed 1 / epoch 0 the
    order of seed 0 / epoch 1)."""
    return seed * 1_000_003 + epoch


class EpochSampler(Sampler[int]):
    """Indices ``0..n-1``, shuffled by ``epoch_seed(seed, epoch)`` when ``shuffle``. Lightning
    calls ``set_epoch`` at every epoch start; under DDP it swaps in its ``DistributedSampler``
    (same interface, Lightning's own seed) and each rank buckets its share."""

    def __init__(self, n: int, shuffle: bool, seed: int = 0) -> None:
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class BucketBatchSampler(BatchSampler):
    """Batches of similar length: the sampler's order is cut into mega-batches of
    ``batch_size * bucket_batches`` indices, each sorted by ``lengths`` and split into batches;
    with ``shuffle`` the batch order is then shuffled by ``epoch_seed(seed, epoch)``.

    ``start`` (set by ``ResumableDataLoader``) skips that many batches of the next iteration.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool = False, *,
                 lengths: Sequence[int], bucket_batches: int = 32, shuffle: bool = True, seed: int = 0) -> None:
        super().__init__(sampler, batch_size, drop_last)
        if bucket_batches < 1:
            raise ValueError(f"bucket_batches must be >= 1, got {bucket_batches}")
        self.lengths, self.bucket_batches, self.shuffle, self.seed = list(lengths), bucket_batches, shuffle, seed
        self.start = 0

    @property
    def epoch(self) -> int:
        return getattr(self.sampler, "epoch", 0)

    def epoch_batches(self) -> list[list[int]]:
        """Every batch of the current epoch, in order."""
        order = list(self.sampler)
        mega = self.batch_size * self.bucket_batches
        batches = []
        for i in range(0, len(order), mega):
            chunk = sorted(order[i:i + mega], key=lambda j: self.lengths[j])
            batches += [chunk[k:k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            random.Random(epoch_seed(self.seed, self.epoch)).shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        start, self.start = self.start, 0
        yield from self.epoch_batches()[start:]


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a ``BucketBatchSampler`` that knows its position in the epoch.

    ``state_dict()`` = the epoch and how many batches were handed out; after
    ``load_state_dict()``, the next iteration of that same epoch skips those batches (without
    loading them). Lightning saves and restores this state with the fit loop. Counting happens
    where batches are handed out, so it is right with worker processes too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch = 0
        self._yielded = 0
        self._resume: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:
        # a generator: the body runs at the first next(), i.e. after Lightning's set_epoch
        epoch = getattr(self.batch_sampler.sampler, "epoch", 0)
        skip = 0
        if self._resume is not None and self._resume["epoch"] == epoch:
            skip = self._resume["batches_yielded"]
        self._resume = None
        self.batch_sampler.start = skip
        self._epoch, self._yielded = epoch, skip
        for batch in super().__iter__():
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches_yielded": self._yielded}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = {"epoch": int(state_dict["epoch"]), "batches_yielded": int(state_dict["batches_yielded"])}
