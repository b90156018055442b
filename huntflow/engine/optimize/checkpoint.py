"""Optimizer checkpoints: compressed, HMAC-SHA256-authenticated state bytes.

A checkpoint is the whole :class:`~huntflow.engine.optimize.hunt.Hunt` state (a nevergrad
optimizer, RNGs, pending asks), which only pickle captures exactly. Unpickling runs code, so a
checkpoint read back from the database is authenticated before anything is decoded: the bytes
are ``MAGIC | tag | zlib(pickle(state))`` where ``tag = HMAC-SHA256(key, MAGIC | body)`` and the
key is held by the workers only (``HUNTFLOW_CHECKPOINT_KEY`` or a 0600 key file in the data
dir, see :func:`huntflow.config.checkpoint_key`), never stored in the database. Anyone who can
write the row but lacks the key gets :class:`~huntflow.errors.CheckpointError`, not code execution.

Checkpoints written before authentication (``HFZ1`` or a bare pickle) are refused with a message
saying so (docs/architecture.md, "Optimizer checkpoints", gives the one-time way forward).

``key=None`` uses a random key drawn once per process: checkpoints then round-trip within the
process (tests, benchmarks) and are useless to any other.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import zlib
from typing import Any

from huntflow.errors import CheckpointError

MAGIC = b"HFC2"  # authenticated, zlib-compressed
LEGACY_MAGIC = b"HFZ1"  # unauthenticated: refused
_TAG = hashlib.sha256().digest_size
_PROCESS_KEY = os.urandom(32)
MIN_KEY_BYTES = 16


def _key(key: bytes | None) -> bytes:
    if key is None:
        return _PROCESS_KEY
    if len(key) < MIN_KEY_BYTES:
        raise CheckpointError(f"checkpoint key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return bytes(key)


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, MAGIC + body, hashlib.sha256).digest()


def dumps(state: Any, *, key: bytes | None = None) -> bytes:
    """Serialize ``state`` (compressed pickle) and sign it with ``key``."""
    body = zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 3)
    k = _key(key)
    return MAGIC + _tag(k, body) + body


def loads(data: bytes, *, key: bytes | None = None) -> Any:
    """Verify ``data``'s tag with ``key``, then decode it; nothing is unpickled before that.

    Raises:
        CheckpointError: not a checkpoint, an unauthenticated legacy one, or a tag that does not
            match (tampered, or signed with another key).
    """
    data = bytes(data)
    if data.startswith(LEGACY_MAGIC) or data[:1] == b"\x80":
        raise CheckpointError(
            "the stored optimizer checkpoint is unauthenticated (written before huntflow signed "
            "checkpoints) and is not loaded; see docs/architecture.md, 'Optimizer checkpoints'")
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _TAG:
        raise CheckpointError("the stored optimizer state is not a huntflow checkpoint")
    tag, body = data[len(MAGIC):len(MAGIC) + _TAG], data[len(MAGIC) + _TAG:]
    if not hmac.compare_digest(tag, _tag(_key(key), body)):
        raise CheckpointError(
            "the stored optimizer checkpoint fails authentication (tampered, or signed with another "
            "key: every worker needs the same HUNTFLOW_CHECKPOINT_KEY); it is not loaded")
    try:
        return pickle.loads(zlib.decompress(body))
    except Exception as e:  # authenticated but undecodable: a bug of ours, still one line
        raise CheckpointError(f"the optimizer checkpoint is authentic but cannot be decoded: {e}") from e
