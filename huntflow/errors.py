"""The exceptions huntflow raises on purpose.

One root, :class:`HuntflowError`; each subclass says when it is raised and may also
inherit the builtin a caller would naturally catch. This module imports nothing of
ours, so every layer (engine, store, tasks, flows) can use it.
"""

from __future__ import annotations


class HuntflowError(Exception):
    """Root of every error huntflow raises on purpose.

    ``exit_code`` is what the CLI exits with when this error reaches it: 1 for a service or
    state problem (database unreachable, lost race), 2 for bad input (:class:`InputError`).
    """

    exit_code: int = 1


class InputError(HuntflowError, ValueError):
    """Raised when input from a person or from outside (a spec, params, a kit, a result
    document, a CLI argument, a URL) is invalid; the message names the field. Exit code 2."""

    exit_code = 2


class SpecError(InputError):
    """Raised when a campaign spec (or a patch of one) is invalid; ``errors`` names each field."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = list(errors)
        lines = "\n".join(f"  {field}: {message}" for field, message in self.errors)
        super().__init__(f"invalid campaign spec ({len(self.errors)} error(s)):\n{lines}")


class DatabaseUrlError(InputError):
    """Raised when the configured database URL (``SUPABASE_DB_URL``) is not a valid conninfo."""


class ResultDocumentError(InputError):
    """Raised when a generation's raw result document is missing fields or malformed."""


class KitError(InputError):
    """Raised when a kit directory, its result or its artifact cannot be run or imported, or does
    not match the generation it claims to be (the message says which field differs)."""


class CheckpointError(HuntflowError, ValueError):
    """Raised when a stored optimizer checkpoint fails authentication, is of an unknown or
    unauthenticated (legacy) format, or is not a checkpoint at all; it is never unpickled then."""


class ArtifactError(HuntflowError, OSError):
    """Raised when an HDF5 artifact is missing, unreadable or does not match its generation."""


class StoreError(HuntflowError, RuntimeError):
    """Raised when the database rejects an operation for a reason other than a lost race."""


class StaleTransition(HuntflowError, RuntimeError):
    """Raised when a row is written from a status it is no longer in (another writer won)."""


class TerminalStateError(HuntflowError, RuntimeError):
    """Raised when a write targets a row that is already in a terminal status."""


class MigrationError(HuntflowError, RuntimeError):
    """Raised when a migration file fails to apply or the applied history is inconsistent."""


class EvaluationFailed(HuntflowError):
    """Raised by an external model's function to fail its candidate with a category of its own.

    ``category`` (``[a-z][a-z0-9_]*``, e.g. ``"vmec_nonconvergence"``) is stored on the
    evaluation row as its ``failure_category``; the message goes into the row's failure detail.
    Any exception with a string ``failure_category`` attribute is treated the same way, so a
    simulator package need not import huntflow.
    """

    def __init__(self, category: str, message: str = ""):
        self.failure_category = str(category)
        super().__init__(message or category)
