"""References into other services' spaces: agent, team and skill ids (ontology) and session ids
(sessions, a later issue).

Today only their formats are checked (in convert.py); no other service is called. This is the one
place where existence checks go once the lead wires them (over gRPC, with the caller's token).
"""

from __future__ import annotations

from services.runtime.domain.tasks import NewTask


async def check_task_references(task: NewTask) -> None:
    """Raises NotFound / FailedPrecondition when a referenced object does not exist. A no-op until
    the ontology and session services are wired in."""
    return None
