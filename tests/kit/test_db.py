"""kit.db's page reads on a real Postgres: rows are fetched until the page is complete, not all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from google.protobuf import struct_pb2

from nexus.kit import paging
from nexus.kit.config import Settings
from nexus.kit.db import Database, read_page


@dataclass(frozen=True)
class NumberCursor:
    n: int


def _value(n: int) -> struct_pb2.Value:
    return struct_pb2.Value(string_value="v" * 4096 + str(n).zfill(5))


async def test_a_page_that_ends_at_the_message_limit_stops_reading_its_rows(settings: Settings) -> None:
    db = Database.for_service(settings, "ontology", pool_size=1)
    keyset = paging.Keyset(NumberCursor, "numbers")
    try:
        async with db.connection() as conn:
            # Each row the database produces takes a number from the sequence, so its value says
            # how many rows were computed and sent, whatever the page kept.
            await conn.execute(sa.text("CREATE TEMPORARY SEQUENCE produced"))
            produced = sa.func.nextval("produced").label("n")
            query = sa.select(produced).select_from(sa.func.generate_series(1, 5000))
            budget = paging.Budget(paging.RESERVED_BYTES + 10 * paging.field_bytes(_value(1).ByteSize()))
            page = keyset.page(_Request(page_size=1000), budget, _value, cursor_of=lambda n: NumberCursor(n))

            def number(row: sa.Row[Any]) -> int:
                return int(row.n)

            await read_page(conn, query, page, number)
            assert len(page.messages) == 10
            assert keyset.after(page.next_page_token) == NumberCursor(10)
            read = (await conn.execute(sa.text("SELECT last_value FROM produced"))).scalar_one()
            assert read < 2 * paging.FETCH_ROWS, read  # one fetch, not the thousand rows the page asked for
    finally:
        await db.close()


@dataclass(frozen=True)
class _Request:
    page_size: int = 0
    page_token: str = ""
