"""The weights layer: pretrained weights and checkpoints into srlab networks.

One job per module, in the order :func:`load_pretrained` uses them:

- :mod:`srlab.weights.hub`: a URL downloaded once into srlab's cache (through
  :func:`srlab.fetch.fetch`, which the dataset downloads share), a path checked to exist.
- :mod:`srlab.weights.checkpoint`: the one safe reader of ``torch.save`` files
  (:func:`read_checkpoint`, always ``weights_only=True``) and the unwrapping of Lightning,
  BasicSR, EMA and plain checkpoints down to the network's state dict
  (:func:`read_state_dict`); :mod:`srlab.weights.matlab` reads the MATLAB ``.mat`` releases.
- :mod:`srlab.weights.registry` and :mod:`srlab.weights.layouts`: whose parameter names a
  state dict uses (one module per foreign code base, each registering itself), and the
  renaming to srlab's.
- :mod:`srlab.weights.load`: matching against the network (strict, ``ignore`` globs, the
  trained scale) and one readable error for any mismatch.

Networks know nothing of this layer: it is given a ``nn.Module`` and fills it.
"""

from srlab.fetch import ChecksumError, FetchError, NetworkError
from srlab.weights import layouts  # noqa: F401 - each layout module registers itself
from srlab.weights.checkpoint import (
    CheckpointError,
    read_checkpoint,
    read_state_dict,
    trained_scale,
)
from srlab.weights.hub import cache_path, default_cache_dir, download_weights, resolve_source
from srlab.weights.load import load_pretrained
from srlab.weights.registry import (
    KeyLayout,
    PretrainedError,
    convert_state_dict,
    detect_layout,
    register_layout,
    registered_layouts,
    rename_by_rules,
)

__all__ = [
    "CheckpointError",
    "ChecksumError",
    "FetchError",
    "KeyLayout",
    "NetworkError",
    "PretrainedError",
    "cache_path",
    "convert_state_dict",
    "default_cache_dir",
    "detect_layout",
    "download_weights",
    "load_pretrained",
    "read_checkpoint",
    "read_state_dict",
    "register_layout",
    "registered_layouts",
    "rename_by_rules",
    "resolve_source",
    "trained_scale",
]
