"""Super-resolve image files with a trained model.

`python src/infer.py ckpt_path=<checkpoint> input=<file|dir|glob> output=<dir>
inference.tile=256`; see conf/infer.yaml for every option. Exits with status 1 when any file
failed (each is reported with its reason; the others are still written).
"""

import sys

import hydra
from omegaconf import DictConfig

from srlab.runtime.hydra import check_renamed_keys, configure_hydra, report_user_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="infer")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; writes the images and logs a summary to the run's infer.log."""
    with report_user_errors():
        from srlab.app.infer import infer  # torch and the rest: once the config is good

        report = infer(cfg)
    if not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    configure_hydra()
    with report_user_errors():
        check_renamed_keys("infer", sys.argv[1:])
    main()
