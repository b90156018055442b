"""Settings, environment first (pydantic-settings).

| variable                      | meaning                                                        |
| ----------------------------- | -------------------------------------------------------------- |
| ``SUPABASE_DB_URL``           | Postgres URL; absent ⇒ embedded Postgres under the data dir     |
| ``HUNTFLOW_DATA_DIR``         | where the embedded database, artifacts and caches live          |
| ``HUNTFLOW_OPERATOR``         | operator for new generations: ``inline``, ``pool``, ``slurm`` or ``manual`` |
| ``HUNTFLOW_GENERATION_DEPLOYMENT`` | deployment pool generations run on (``hunt-generation/gpu``) |
| ``HUNTFLOW_TICK_DEPLOYMENT``  | deployment a finished pool generation triggers at once          |
| ``HUNTFLOW_CHAIN_TICKS``      | ``false`` to leave the pace to the schedule alone               |
| ``HUNTFLOW_SLURM_SBATCH_ARGS``| extra ``sbatch`` arguments for slurm generations (shell-split)  |
| ``HUNTFLOW_SLURM_PYTHON``     | interpreter slurm jobs run (default: the submitting one)        |
| ``PREFECT_API_URL``           | read by Prefect itself; absent ⇒ an ephemeral API in-process   |

Secrets (the database URL's password) are never logged: use :func:`redact_url`.
"""

from __future__ import annotations

import re
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
    tick_deployment: str = "hunt-tick/every-5-minutes"
    chain_ticks: bool = True
    slurm_sbatch_args: str = ""
    slurm_python: str | None = None

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"


def get_settings() -> Settings:
    """Read settings from the environment now (never cached: tests change the environment)."""
    return Settings()


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", url)
