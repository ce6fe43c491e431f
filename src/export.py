"""Export a trained network to ONNX or TorchScript, checked against eager PyTorch.

`python src/export.py ckpt_path=<checkpoint> format=onnx|torchscript output=<file>`; see conf/export.yaml for every option. Exits with status 1 when the export
fails or does not match eager PyTorch within parity.atol.
"""

import sys

import hydra
from omegaconf import DictConfig

from srlab.runtime.hydra import check_renamed_keys, configure_hydra, report_user_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; writes the exported file and prints the parity check."""
    with report_user_errors():
        from srlab.app.export import export  # torch and the rest: once the config is good

        export(cfg)


if __name__ == "__main__":
    configure_hydra()
    with report_user_errors():
        check_renamed_keys("export", sys.argv[1:])
    main()
