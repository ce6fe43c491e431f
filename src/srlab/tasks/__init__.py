"""LightningModules: the shared SR evaluation base and the training tasks."""

from srlab.tasks.base import SRTask
from srlab.tasks.gan import SRGANTask
from srlab.tasks.regression import RegressionTask

__all__ = ["RegressionTask", "SRGANTask", "SRTask"]
