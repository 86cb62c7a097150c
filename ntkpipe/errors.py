"""Project error classes: every user-facing failure of ntkpipe is one of these.

Each message is a specification: the field or file concerned, the value found,
what is allowed, and how to fix it. The workflow and the CLI print the message
alone (no traceback) and exit non-zero.
"""

__all__ = ["NtkpipeError", "ConfigError", "DatasetError", "StoreError", "StageError"]


class NtkpipeError(Exception):
    """Base class of the errors ntkpipe raises on bad input or bad files."""


class ConfigError(NtkpipeError, ValueError):
    """An invalid sweep or run configuration.

    All problems found are collected and reported together.

    Attributes:
        errors: one message per problem, each starting with the dotted path of
            the field, e.g. ``model.activation: 'softplus' is not one of relu, erf,
            tanh, identity``.
        source: the file the configuration came from, or None.
    """

    def __init__(self, errors, source=None):
        if isinstance(errors, str):
            errors = [errors]
        self.errors = list(errors)
        self.source = None if source is None else str(source)
        where = f" in {self.source}" if self.source else ""
        count = len(self.errors)
        head = f"invalid configuration{where} ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {e}" for e in self.errors)]))


class DatasetError(NtkpipeError, ValueError):
    """A dataset that cannot be read: missing or malformed files, too few examples."""


class StoreError(NtkpipeError):
    """A Zarr store that is missing, partial (interrupted job), corrupted or of the wrong stage."""


class StageError(NtkpipeError):
    """A workflow stage that cannot run: a missing or unsuitable input (run config, store)."""
