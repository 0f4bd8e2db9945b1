"""How a task's run ends early. Each is raised from deep inside a step and handled once, by the
runner."""

from __future__ import annotations

from nexus.kit.validation import JSON


class StepFailure(Exception):
    """The step cannot succeed (unknown action, bad args, a template naming an unknown value, a
    call the runtime rejects): the step is marked failed and the task fails with this error."""

    def __init__(self, reason: str, message: str, details: dict[str, JSON] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = dict(details or {})


class LeaseLost(Exception):
    """The worker no longer holds the task (its lease expired or was taken over, or the task
    ended, e.g. cancelled by its owner): stop touching the task at once, write nothing more."""


class Transient(Exception):
    """The runtime (or ontology) cannot be reached right now. The run is abandoned; the lease
    expires, the task is queued again, and the next claim resumes it from its plan."""
