"""Evaluate an SR model, or a folder of SR images, by the literature's protocol.

`python src/eval.py model=edsr ckpt=<checkpoint> scale=4 eval.sets=[set5,set14,bsd100]`
"""

import hydra
from omegaconf import DictConfig

from srlab.app.evaluate import evaluate
from srlab.runtime.hydra import configure_hydra, report_user_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; writes results.json and results.md to the run's output dir."""
    with report_user_errors():
        evaluate(cfg)


if __name__ == "__main__":
    configure_hydra()
    main()
