"""How a run runs: Hydra set-up and user-error reporting (:mod:`~srlab.runtime.hydra`), DDP
ranks of a Hydra job (:mod:`~srlab.runtime.launch`), checkpoint files and resume
(:mod:`~srlab.runtime.checkpoints`), and the config key check
(:mod:`~srlab.runtime.config_check`)."""
