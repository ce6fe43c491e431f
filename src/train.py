"""Train an SR network: `python src/train.py [model=edsr] [data=div2k] [key=value ...]`.

Only Hydra and omegaconf are imported before the config is composed: ``--help`` and a key that
is not in the config answer in well under a second, before torch, Lightning and W&B load
(inside :func:`main`).
"""

import hydra
from omegaconf import DictConfig

from srlab.runtime.hydra import configure_hydra, report_user_errors
from srlab.runtime.launch import export_submitit_ranks


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``optimized_metric`` (default: the best val/psnr) for sweepers."""
    # A submitit_local job runs one task per device: each must know its DDP rank before the
    # Trainer exists (on SLURM, Lightning reads it from SLURM's variables).
    export_submitit_ranks()
    with report_user_errors():
        from srlab.app.train import train  # torch, Lightning, W&B: only once the config is good

        return train(cfg)


if __name__ == "__main__":
    configure_hydra()
    main()
