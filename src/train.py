"""Train an SR network: `python src/train.py [model=edsr] [data=div2k] [key=value ...]`."""

import hydra
from omegaconf import DictConfig

from srlab.cli import report_user_errors
from srlab.pipeline import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the best val/psnr for sweepers."""
    with report_user_errors():
        return train(cfg)


if __name__ == "__main__":
    main()
