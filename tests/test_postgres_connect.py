"""PostgreSQL storage: an unreachable server is reported at once (or after connect_timeout),
and PostgreSQL's system schemas are refused."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg")

from psycopg import sql

from durable_execution.errors import DurableStorageError
from durable_execution.storage import storage_from_url
from durable_execution.storage.postgres import PostgresStorage, connections

from .pg import POSTGRES_DSN, admin_connection


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


async def _initialize_error(storage: PostgresStorage) -> tuple[DurableStorageError, float]:
    started = time.monotonic()
    with pytest.raises(DurableStorageError) as info:
        await storage.initialize()
    await storage.close()
    return info.value, time.monotonic() - started


async def test_a_refused_connection_is_reported_at_once_not_after_the_pool_timeout(
    closed_port: int,
) -> None:
    storage = PostgresStorage(f"postgresql://nobody@127.0.0.1:{closed_port}/db", pool_timeout_s=30)
    error, elapsed = await _initialize_error(storage)
    assert elapsed < 3  # was pool_timeout_s: the pool retried in the background until then
    assert error.is_transient
    assert f"PostgreSQL server unreachable (host=127.0.0.1 port={closed_port}" in str(error)
    assert "connect_timeout 5 s" in str(error)


async def test_a_server_that_does_not_answer_is_reported_after_connect_timeout(
    silent_port: int,
) -> None:
    dsn = f"postgresql://nobody@127.0.0.1:{silent_port}/db?connect_timeout=2"
    error, elapsed = await _initialize_error(PostgresStorage(dsn, pool_timeout_s=30))
    assert 1.5 < elapsed < 6
    assert error.is_transient
    assert f"port={silent_port}" in str(error)
    assert "connect_timeout 2 s" in str(error)


async def test_without_connect_timeout_the_documented_default_bounds_the_wait(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    monkeypatch.setattr(connections, "DEFAULT_CONNECT_TIMEOUT_S", 2)  # 5 s in production
    storage = PostgresStorage(f"postgresql://nobody@127.0.0.1:{silent_port}/db", pool_timeout_s=30)
    error, elapsed = await _initialize_error(storage)
    assert 1.5 < elapsed < 6
    assert "connect_timeout 2 s" in str(error)


async def test_the_storage_opens_and_reopens_on_a_reachable_server() -> None:
    # Tables of its own in a schema that exists already (public): a fixed prefix would be
    # shared with every other checkout of the project using the same database, at whatever
    # schema version they migrated it to.
    prefix = f"de_connect_{uuid.uuid4().hex[:8]}_"
    storage = PostgresStorage(POSTGRES_DSN, schema="public", table_prefix=prefix)
    try:
        await storage.initialize()
        assert await storage.get_executions(["te_none"]) == []
        await storage.close()
        assert await storage.get_executions(["te_none"]) == []  # reopened by an operation
    finally:
        await storage.close()
        async with await admin_connection() as admin:
            cur = await admin.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND starts_with(tablename, %s)",
                [prefix],
            )
            for (table,) in await cur.fetchall():
                await admin.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(table)))


@pytest.mark.parametrize(
    "schema", ["pg_catalog", "information_schema", "pg_toast", "pg_temp_3", "PG_Catalog"]
)
def test_system_schemas_are_refused(schema: str) -> None:
    with pytest.raises(ValueError, match=f"Invalid schema '{schema}': it is a PostgreSQL system"):
        PostgresStorage(POSTGRES_DSN, schema=schema)
    with pytest.raises(ValueError, match="PostgreSQL system schema"):
        storage_from_url(f"{POSTGRES_DSN}?schema={schema}")


def test_a_url_with_spaces_around_is_accepted() -> None:
    storage = storage_from_url(f"  \t{POSTGRES_DSN}?schema=jobs\n")
    assert isinstance(storage, PostgresStorage)
    assert storage.schema == "jobs"


async def test_asyncio_is_not_blocked_while_connecting(silent_port: int) -> None:
    dsn = f"postgresql://nobody@127.0.0.1:{silent_port}/db?connect_timeout=2"
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    try:
        await _initialize_error(PostgresStorage(dsn))
    finally:
        ticker.cancel()
    assert ticks > 10
