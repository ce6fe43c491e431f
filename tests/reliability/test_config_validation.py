"""A typo in a model, data or trainer key fails before anything is built, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import compose_config

from srlab.app.train import train
from srlab.errors import ConfigError
from srlab.runtime.config_check import accepted_keys
from srlab.tasks import RegressionTask


@pytest.mark.parametrize(
    ("override", "named", "valid"),
    [
        ("+model.optimizer.learning_rate=0.1", "model.optimizer.learning_rate", "lr"),
        ("+model.max_nonfinite_step=3", "model.max_nonfinite_step", "max_nonfinite_steps"),
        ("+model.net.net.num_blocks=3", "model.net.net.num_blocks", "num_block"),
        ("+data.batchsize=4", "data.batchsize", "batch_size"),
        ("+trainer.max_step=4", "trainer.max_step", "max_steps"),
    ],
)
def test_unknown_key_is_named_with_the_valid_ones(
    tmp_path: Path, override: str, named: str, valid: str
) -> None:
    cfg = compose_config(tmp_path, ["debug=fast", override])
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert named in str(info.value) and valid in str(info.value)
    assert not (tmp_path / "checkpoints").exists()  # nothing was built or trained


def test_task_keys_follow_forwarded_kwargs_to_the_base_task() -> None:
    keys = accepted_keys(RegressionTask)
    assert {"loss", "optimizer", "pretrained", "max_nonfinite_steps", "net"} <= keys
