"""`nexus keys rotate`: re-encrypt every connection under the newest credential key.

It runs beside the live service. Each batch is one short transaction that locks its rows with
FOR UPDATE SKIP LOCKED, so it never waits on (or blocks) a request for long, and a row a request
holds is simply picked up by a later pass. Progress is the data itself (rows whose key id is not
the newest), so an interrupted rotation resumes by running it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from nexus.kit.config import Settings
from nexus.kit.db import Database
from services.user.domain import envelope
from services.user.domain.envelope import RowBinding, Sealed
from services.user.domain.records import StoredCredentials
from services.user.keys import CredentialKeys
from services.user.store.rotation import RotationStore

log = logging.getLogger("nexus.user.rotation")


@dataclass
class RotationReport:
    newest_kid: str
    moved: int = 0
    batches: int = 0
    failed: set[str] = field(default_factory=set)
    # Rows still under another key when the run ended (failed ones included).
    remaining: int = 0

    @property
    def complete(self) -> bool:
        return self.remaining == 0


async def rotate(
    store: RotationStore,
    keys: CredentialKeys,
    *,
    batch_size: int = 200,
    max_batches: int | None = None,
    max_passes: int = 5,
    on_batch: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    newest = keys.for_encrypt()  # re-reads the key file if it changed
    report = RotationReport(newest.kid)

    def reseal(stored: StoredCredentials) -> Sealed:
        binding = RowBinding(connection_id=stored.connection_id, user_id=stored.user_id, provider=stored.provider)
        return envelope.reseal(keys.for_decrypt(stored.key_id), newest, binding, stored.blob)

    for attempt in range(max_passes):
        after: str | None = None
        while max_batches is None or report.batches < max_batches:
            moved, last, failed = await store.reseal_batch(newest.kid, after, batch_size, reseal)
            if last is None:
                break
            report.batches += 1
            report.moved += moved
            report.failed.update(failed)
            after = last
            if on_batch is not None:
                on_batch(report)
        counts = await store.count_by_key()
        report.remaining = sum(n for kid, n in counts.items() if kid != newest.kid)
        stuck = report.remaining - len(report.failed)
        if stuck <= 0 or (max_batches is not None and report.batches >= max_batches):
            break
        # Rows that were locked by requests during this pass: wait a moment and go again.
        await asyncio.sleep(0.2 * (attempt + 1))
    log.info(
        "credential rotation finished",
        extra={
            "fields": {
                "newest_kid": report.newest_kid,
                "moved": report.moved,
                "remaining": report.remaining,
                "failed": len(report.failed),
            }
        },
    )
    return report


async def run(settings: Settings, *, batch_size: int, out: TextIO) -> int:
    """The body of `nexus keys rotate`: 0 when every row is on the newest key."""
    keys = CredentialKeys(settings.resolved_credential_keys_file)
    database = Database.for_service(settings, "user", pool_size=1)
    try:

        def progress(report: RotationReport) -> None:
            print(f"  batch {report.batches}: {report.moved} re-encrypted so far", file=out, flush=True)

        print(f"re-encrypting connection credentials under key {keys.ring.newest.kid}", file=out, flush=True)
        report = await rotate(RotationStore(database), keys, batch_size=batch_size, on_batch=progress)
    finally:
        await database.close()
    print(f"done: {report.moved} re-encrypted, {report.remaining} still under older keys", file=out)
    if report.failed:
        print(f"{len(report.failed)} could not be decrypted (altered, or their key is gone):", file=out)
        for ident in sorted(report.failed):
            print(f"  connection {ident}", file=out)
    if not report.complete:
        print("run `nexus keys rotate` again to finish", file=out)
    return 0 if report.complete else 1
