"""The training dataset's samples with their degradation parameters, drawn in the loader.

:class:`WithDegradationParams` wraps the patch dataset: each sample keeps its HR patch (the
LR the wrapped dataset also returns is replaced on the device) and gains ``degradation``, its
parameters drawn from its :class:`~srlab.data.sampling.PatchKey`'s seed, so they are a function
of the run's seed, the epoch and the sample's global position in the epoch's order, like its
crop. The loader collates them into ``{name: [B] tensor}``.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from srlab.data.degradations.params import params_tensors, sample_seed
from srlab.data.degradations.pipeline import RealESRGANDegradation
from srlab.data.sampling import PatchKey
from srlab.errors import DataError


class WithDegradationParams(Dataset):
    """``dataset[key]`` plus ``"degradation"``: the sample's drawn parameters.

    Args:
        dataset: a training dataset indexed by :class:`~srlab.data.sampling.PatchKey`.
        degradation: the degradation model whose parameters are drawn.
    """

    def __init__(self, dataset: Dataset, degradation: RealESRGANDegradation) -> None:
        self.dataset = dataset
        self.degradation = degradation

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: PatchKey) -> dict:
        if not isinstance(key, PatchKey):
            raise DataError(
                f"degraded training samples are indexed by PatchKey (seeded per sample), got "
                f"{type(key).__name__} {key!r}: use srlab.data.sampling.TrainSampler"
            )
        sample = dict(self.dataset[key])
        params = self.degradation.draw(sample_seed(key.seed))
        sample["degradation"] = params_tensors(params)
        return sample
