"""State enums mirrored from the ``hunt`` schema's enum types, with their predicates."""

from __future__ import annotations

import enum


class CampaignStatus(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_finished(self) -> bool:
        return self in CAMPAIGN_TERMINAL


CAMPAIGN_TERMINAL = frozenset({CampaignStatus.COMPLETED, CampaignStatus.FAILED, CampaignStatus.CANCELLED})


class Mode(str, enum.Enum):
    EXPLORE = "explore"
    EXPLOIT = "exploit"
    RECOVER = "recover"


class Stage(str, enum.Enum):
    DISCOVER = "discover"
    DISPATCH = "dispatch"
    PARSE = "parse"
    REVIEW = "review"
    EVOLVE = "evolve"
    LEARN = "learn"


STAGES: tuple[Stage, ...] = tuple(Stage)


class GenerationStatus(str, enum.Enum):
    PLANNED = "planned"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARSED = "parsed"
    REVIEWED = "reviewed"
    TOLD = "told"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_finished(self) -> bool:
        return self in GENERATION_TERMINAL

    def is_in_flight(self) -> bool:
        """Asked but not yet told: counts against the campaign's in-flight limit."""
        return not self.is_finished()


GENERATION_TERMINAL = frozenset({GenerationStatus.TOLD, GenerationStatus.FAILED, GenerationStatus.CANCELLED})
GENERATION_LAUNCHED = frozenset({GenerationStatus.DISPATCHED, GenerationStatus.RUNNING})


class GenerationKind(str, enum.Enum):
    SEARCH = "search"
    PROMOTION = "promotion"
    CERTIFICATION = "certification"
    VERIFICATION = "verification"  # review's perturbed re-run of another generation's best (never told)


class EvaluationStatus(str, enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    FILTERED = "filtered"


class StageRunStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CRASHED = "crashed"
    """Left ``running`` by a tick that died; closed by a later tick's discover."""


class Severity(str, enum.Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    def rejects(self) -> bool:
        """A critical or high finding rejects the evaluation."""
        return self in (Severity.CRITICAL, Severity.HIGH)
