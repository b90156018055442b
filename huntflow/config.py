"""Settings, environment first (pydantic-settings).

| variable                      | meaning                                                        |
| ----------------------------- | -------------------------------------------------------------- |
| ``SUPABASE_DB_URL``           | Postgres URL; absent ⇒ embedded Postgres under the data dir     |
| ``HUNTFLOW_DATA_DIR``         | where the embedded database, artifacts and caches live          |
| ``HUNTFLOW_OPERATOR``         | operator for new generations: ``inline``, ``pool``, ``slurm`` or ``manual`` |
| ``HUNTFLOW_GENERATION_DEPLOYMENT`` | deployment pool generations run on (``hunt-generation/gpu``) |
| ``HUNTFLOW_TICK_DEPLOYMENT``  | deployment a campaign's own tick runs on (``hunt-tick/chained``) |
| ``HUNTFLOW_CHAIN_TICKS``      | ``false`` to leave the pace to the schedule alone               |
| ``HUNTFLOW_SLURM_SBATCH_ARGS``| extra ``sbatch`` arguments for slurm generations (shell-split)  |
| ``HUNTFLOW_SLURM_PYTHON``     | interpreter slurm jobs run (default: the submitting one)        |
| ``HUNTFLOW_CHECKPOINT_KEY``  | key (≥ 16 chars) signing optimizer checkpoints; absent ⇒ a 0600 key file in the data dir |
| ``PREFECT_API_URL``           | read by Prefect itself; absent ⇒ an ephemeral API in-process   |

Secrets (the database URL's password) are never logged: use :func:`redact_url`.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("huntflow"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUNTFLOW_", extra="ignore")

    supabase_db_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SUPABASE_DB_URL", "HUNTFLOW_SUPABASE_DB_URL")
    )
    data_dir: Path = Field(default_factory=_default_data_dir)
    operator: Literal["inline", "pool", "slurm", "manual"] = "inline"
    generation_deployment: str = "hunt-generation/gpu"
    tick_deployment: str = "hunt-tick/chained"
    chain_ticks: bool = True
    slurm_sbatch_args: str = ""
    slurm_python: str | None = None
    checkpoint_key: str | None = Field(default=None, repr=False)

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"


_READ: dict[tuple[tuple[str, str], ...], Settings] = {}
_ENV_NAMES = ("SUPABASE_DB_URL", "HOME", "XDG_DATA_HOME")


def get_settings() -> Settings:
    """The settings the environment gives now (tests change the environment). Building them
    costs ~5 ms and a tick asks a dozen times, so they are kept per distinct value of what they
    read (the ``HUNTFLOW_`` variables, ``SUPABASE_DB_URL`` and what the default data dir
    depends on); each caller gets its own copy."""
    key = tuple(sorted((k, v) for k, v in os.environ.items()
                       if k.upper().startswith("HUNTFLOW_") or k.upper() in _ENV_NAMES))
    settings = _READ.get(key)
    if settings is None:
        settings = Settings()
        if len(_READ) > 64:  # a test suite walks many environments: keep the table small
            _READ.clear()
        _READ[key] = settings
    return settings.model_copy()


def checkpoint_key(settings: Settings | None = None) -> bytes:
    """The key that signs and verifies optimizer checkpoints (never stored in the database).

    ``HUNTFLOW_CHECKPOINT_KEY`` when set (give every worker of a shared database the same one);
    else ``$HUNTFLOW_DATA_DIR/checkpoint.key``, created with 32 random bytes and mode 0600 on
    first use (so one machine, or workers sharing the data dir, agree without configuration).
    """
    settings = settings or get_settings()
    if settings.checkpoint_key:
        return settings.checkpoint_key.encode()
    path = settings.data_dir / "checkpoint.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():  # write aside, then link: a concurrent reader never sees a half-written key
        tmp = path.with_name(f".checkpoint.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as f:
        return f.read().strip().encode()


_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/?#@'\"]*):(?P<pw>[^\s'\"]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&](?:password|passwd|pwd|pass)=)[^&\s#'\"]*", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(
    r"(?<![?&])(?P<key>\b(?:password|passwd|pwd|pass)\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s,;]*)",
    re.IGNORECASE)


def _passwords_of(url: str) -> set[str]:
    """The password(s) a conninfo string carries, raw and percent-decoded (for literal scrubbing)."""
    from urllib.parse import unquote

    found: set[str] = set()
    for m in _URL_USERINFO.finditer(url):
        found.add(m["pw"])
    for pattern in (_QUERY_PASSWORD, _KEYWORD_PASSWORD):
        for m in pattern.finditer(url):
            found.add(m.group(0)[len(m["key"]):].strip("'\""))
    return {p for raw in found for p in (raw, unquote(raw)) if len(p) >= 3}


def redact(text: object, *, url: str | None = None) -> str:
    """``text`` with every password it may carry replaced by ``***``: the one redaction used
    wherever a database URL or a driver message is printed, logged or stored.

    Covers libpq's forms: URLs (``postgresql://user:pw@host``, an empty user ``postgresql://:pw@``,
    an ``@`` or percent-encoding inside the password), the keyword string (``password=pw``,
    quoted or not) and the query parameter (``?password=pw``). With ``url`` (the configured one),
    its password is also scrubbed wherever it appears literally, raw or percent-decoded, in
    whatever the driver said. ``SUPABASE_DB_URL`` and ``PGPASSWORD`` are always taken into account.
    """
    out = str(text)
    secrets_ = set()
    for source in (url, os.environ.get("SUPABASE_DB_URL"), os.environ.get("HUNTFLOW_SUPABASE_DB_URL")):
        if source:
            secrets_ |= _passwords_of(source)
    if len(os.environ.get("PGPASSWORD", "")) >= 3:
        secrets_.add(os.environ["PGPASSWORD"])
    for secret in sorted(secrets_, key=len, reverse=True):
        out = out.replace(secret, "***")
    out = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", out)
    out = _QUERY_PASSWORD.sub(lambda m: f"{m['key']}***", out)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['key']}***", out)


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (see :func:`redact`)."""
    return redact(url, url=url)
