"""The training order: shuffled patch keys that are a fixed function of (seed, epoch).

Exact resume needs the data order and every random crop to be reproducible after a restart,
whatever the process's RNG state, the number of loader workers or which worker makes which
patch. So the order is not drawn from a global RNG: each epoch's permutation, the seed of
each patch (which drives its crop and flips) and the scale of each batch all come from one
generator seeded by the run's seed and the epoch. A resumed run skips the keys the
interrupted run had already trained on (:meth:`TrainSampler.resume`) and sees exactly the
batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch.utils.data import DistributedSampler

from srlab.errors import DataError


class PatchKey(NamedTuple):
    """What a training dataset needs to make one patch.

    Attributes:
        index: the sample index in the dataset.
        seed: seeds the patch's crop position and dihedral transform.
        scale: the SR scale of the patch (one per batch when several scales are trained).
    """

    index: int
    seed: int
    scale: int


class TrainSampler(DistributedSampler):
    """Shuffled :class:`PatchKey` s for training, split over DDP ranks, resumable mid-epoch.

    Epoch ``e`` is a permutation drawn from a generator seeded by ``seed`` and ``e``; the same
    generator draws each position's patch seed and, per batch, one of ``scales``, so all
    patches of a batch share a size and all ranks train the same scale at each step. Rank
    ``r`` of ``W`` takes positions ``r, r + W, ...`` after the tail that does not divide by
    ``W`` is dropped, so every rank runs the same number of steps and no sample is repeated.
    A subclass of :class:`~torch.utils.data.DistributedSampler`, so Lightning neither replaces
    nor wraps it, and calls :meth:`set_epoch` at each epoch start.

    Args:
        length: the dataset length.
        batch_size: samples per batch on each rank (the scale changes between batches).
        scales: the scales to draw per batch; one scale trains one model at that scale.
        seed: the run's seed.
        num_replicas: the number of DDP processes (world size).
        rank: this process's rank.

    Raises:
        DataError: fewer samples than ranks.
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        scales: Sequence[int],
        seed: int,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        # DistributedSampler's state (epoch, rank, num_replicas, seed) without its dataset:
        # only the length matters here.
        super().__init__(
            range(length), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        if length < num_replicas:
            raise DataError(
                f"{length} training samples cannot be split over {num_replicas} DDP processes: "
                "add training images or raise data.repeat"
            )
        self.length = length
        self.batch_size = batch_size
        self.scales = list(scales)
        self.num_samples = length // num_replicas
        self.total_size = self.num_samples * num_replicas
        self._resume_epoch: int | None = None
        self._resume_done = 0

    def resume(self, epoch: int, samples_done: int) -> None:
        """Skip the first ``samples_done`` keys of this rank's ``epoch`` (once).

        Args:
            epoch: the epoch the interrupted run was in.
            samples_done: how many of this rank's samples of that epoch it had trained on.
        """
        self._resume_epoch, self._resume_done = epoch, samples_done

    def keys(self, epoch: int) -> list[PatchKey]:
        """This rank's keys of ``epoch``, in order.

        >>> sampler = TrainSampler(6, batch_size=2, scales=[2, 3], seed=0)
        >>> [key.index for key in sampler.keys(0)] == [key.index for key in sampler.keys(0)]
        True
        >>> sorted(key.index for key in sampler.keys(0))
        [0, 1, 2, 3, 4, 5]
        >>> [len({key.scale for key in sampler.keys(0)[i : i + 2]}) for i in (0, 2, 4)]
        [1, 1, 1]
        >>> len(TrainSampler(6, 2, [2], seed=2**64 - 1).keys(0))
        6
        """
        # Any int seed (torch.initial_seed() may be a random 64-bit one) into the valid range.
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        order = torch.randperm(self.length, generator=generator)[: self.total_size]
        seeds = torch.randint(2**62, (self.total_size,), generator=generator)
        mine = slice(self.rank, self.total_size, self.num_replicas)
        num_batches = -(-self.num_samples // self.batch_size)
        scales = torch.randint(len(self.scales), (num_batches,), generator=generator).tolist()
        return [
            PatchKey(index, seed, self.scales[scales[position // self.batch_size]])
            for position, (index, seed) in enumerate(
                zip(order[mine].tolist(), seeds[mine].tolist(), strict=True)
            )
        ]

    def __iter__(self) -> Iterator[PatchKey]:
        keys = self.keys(self.epoch)
        if self._resume_epoch is not None and self.epoch >= self._resume_epoch:
            if self.epoch == self._resume_epoch:
                keys = keys[self._resume_done :]
            self._resume_epoch = None
        return iter(keys)

    def __len__(self) -> int:
        # The whole epoch, also when resuming: Lightning counts the skipped batches as done.
        return self.num_samples
