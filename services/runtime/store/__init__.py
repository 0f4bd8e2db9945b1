"""The runtime's persistence: the only modules with SQL.

- `tables`: SQLAlchemy Core tables (mirroring migrations/runtime).
- `tasks`: tasks, transitions and leases (SQLAlchemy Core, one transaction per call).
- `events`: the event log's hot path on raw psycopg: the group committer and event reads.
- `notify`: the LISTEN connection that turns other replicas' commits into wake-up hints.
"""
