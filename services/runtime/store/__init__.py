"""The runtime's persistence: the only modules with SQL.

- `tables`: SQLAlchemy Core tables (mirroring migrations/runtime).
- `writer`: the one writer of event rows (seqs, the insert, their times, the notification).
- `tasks`: tasks, transitions and leases (SQLAlchemy Core, one transaction per call).
- `events`: the event log's hot path on raw psycopg: the group committer and event reads.
- `notify`: the LISTEN connection that turns other replicas' commits into wake-up hints.
- `pg`: the hot path's psycopg connections and read pool.
"""
