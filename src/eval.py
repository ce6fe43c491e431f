"""Evaluate an SR model, or a folder of SR images, by the literature's protocol.

`python src/eval.py ckpt_path=<checkpoint> data.test_sets=[set5,set14,bsd100]`
"""

import sys

import hydra
from omegaconf import DictConfig

from srlab.runtime.hydra import check_renamed_keys, configure_hydra, report_user_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; writes results.json and results.md to the run's output dir."""
    with report_user_errors():
        from srlab.app.evaluate import evaluate  # torch and the rest: once the config is good

        evaluate(cfg)


if __name__ == "__main__":
    configure_hydra()
    with report_user_errors():
        check_renamed_keys("eval", sys.argv[1:])
    main()
