"""Transport values: proto ↔ domain, and request validation (DESIGN §5), one module per resource.

Every bad field of a request is collected and reported at once; nothing malformed reaches a store.
A request that carries several values comes back as a small dataclass, never a positional tuple.
`shared` holds what several resources' requests have in common; page tokens are the kit's
(`paging.Keyset`) over the cursors the stores define next to their queries.
"""

from services.runtime.convert import artifacts, events, schedules, sessions, shared, tasks, workspace

__all__ = ["artifacts", "events", "schedules", "sessions", "shared", "tasks", "workspace"]
