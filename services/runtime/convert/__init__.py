"""Transport values: proto ↔ domain, and request validation (DESIGN §5), one module per resource.

Every bad field of a request is collected and reported at once; nothing malformed reaches a store.
A request that carries several values comes back as a small dataclass, never a positional tuple.
`shared` and `pages` hold what several resources' requests have in common.
"""

from services.runtime.convert import artifacts, events, pages, schedules, sessions, shared, tasks, workspace

__all__ = ["artifacts", "events", "pages", "schedules", "sessions", "shared", "tasks", "workspace"]
