"""Exceptions a user can cause. Each message says what went wrong, where, and how to fix it."""

from __future__ import annotations


class DvlmError(Exception):
    """Base class for every error dvlm raises on purpose (the CLI prints these without a traceback)."""


class RegistryError(DvlmError):
    """A kind could not be registered (collision, malformed params model)."""


class UnknownKindError(DvlmError, KeyError):
    """A spec or call names a kind that no loaded plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class SpecError(DvlmError, ValueError):
    """A spec file or dict does not validate."""


class ImageError(DvlmError, ValueError):
    """An image cannot be used: missing, corrupt or truncated file, unsupported object, too many pixels."""


class PromptError(DvlmError, ValueError):
    """A prompt does not fit the model: ``<image>`` placeholders vs images, or longer than the context."""


class CheckpointError(DvlmError, ValueError):
    """A checkpoint folder cannot be loaded or saved: unknown layout, missing config field, missing,
    truncated or mismatched weights."""


class SamplerError(DvlmError, ValueError):
    """A sampler cannot run as configured (lengths that do not fit, an undeclared token role, ...)."""


class DataError(DvlmError, ValueError):
    """Training or evaluation data cannot be used: unreadable file, malformed rows (when told to fail)."""


class TrainingError(DvlmError, RuntimeError):
    """A training run cannot go on: non-finite loss or gradients, a resume that does not match the run."""


class EvalError(DvlmError, ValueError):
    """Scoring or evaluation cannot run as asked: Monte-Carlo sizes, empty choices, a request without the
    image or text it needs."""
