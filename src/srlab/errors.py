"""Errors that srlab raises for problems a user can fix (data, config, files).

Entry points print these as a short message, without a stack trace: the message itself
says what was wrong, where, and how to fix it.
"""


class SRLabError(Exception):
    """Base class of the errors a user can fix by changing data or config."""


class ConfigError(SRLabError):
    """A config value is invalid or inconsistent with another one."""


class DataError(SRLabError):
    """A dataset's files are missing, unreadable or inconsistent."""


class DatasetNotFoundError(DataError):
    """A dataset's folder or files are not where the config says they are."""


class ImageReadError(DataError):
    """An image file exists but cannot be read or decoded."""


class NonFiniteLossError(SRLabError):
    """Too many training steps in a row had a NaN or infinite loss."""


class NonFiniteWeightsError(NonFiniteLossError):
    """Training diverged: the network's weights hold NaN or infinite values."""


class CheckpointWriteError(SRLabError):
    """A checkpoint could not be written (a full disk, a quota, permissions)."""
