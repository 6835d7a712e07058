"""Connections: the pool a storage owns, checking pooled connections, and safe descriptions."""

from __future__ import annotations

import inspect
import os
import weakref
from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection, OperationalError
from psycopg.conninfo import conninfo_to_dict, timeout_from_conninfo
from psycopg.errors import Diagnostic
from psycopg.pq import ConnStatus, TransactionStatus
from psycopg_pool import AsyncConnectionPool

from durable_execution.storage.postgres.reconnect import pool_class

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "SESSION_SETTINGS",
    "connect_timeout_kwargs",
    "is_usable",
    "configure_connection",
    "connect_autocommit",
    "connect_like_pool",
    "describe_dsn",
    "new_pool",
]

SESSION_SETTINGS = (
    "SET plan_cache_mode = force_generic_plan; "
    "SET enable_seqscan = off; SET enable_bitmapscan = off; SET jit = off"
)
"""The planner settings of the storage's own connections (see :func:`configure_connection`)."""

DEFAULT_CONNECT_TIMEOUT_S = 5
"""How long a connection attempt waits for the server when neither the DSN nor
``PGCONNECT_TIMEOUT`` says (psycopg's own default is 130 s)."""

_CONSUME_ATTEMPTS = 2
_FATAL = frozenset({"FATAL", "PANIC"})

# Pooled connections to which the server said it is terminating them (see is_usable).
_doomed: weakref.WeakSet[AsyncConnection[Any]] = weakref.WeakSet()


def is_usable(conn: AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection still looks usable, without a round trip.

    :meth:`AsyncConnectionPool.check_connection` sends a query; this only reads what the
    server sent while the connection was idle. A server that terminates a backend (restart,
    ``pg_terminate_backend``) first sends a ``FATAL`` message, which the notice handler of
    :func:`configure_connection` records, then closes the socket, which reading sees. A
    connection that breaks without a word (or later) fails its operation instead, which the
    storage reports as a ``DurableStorageError``; the pool then discards it.
    """
    if conn.closed or conn.broken or conn in _doomed:
        return False
    pgconn = conn.pgconn
    try:
        for _ in range(_CONSUME_ATTEMPTS):  # a message, then possibly the end of the stream
            pgconn.consume_input()  # raises OperationalError once the server closed the socket
            pgconn.is_busy()  # parses what was read: a message while idle goes to the notices
    except OperationalError:
        return False
    return (
        conn not in _doomed
        and pgconn.status == ConnStatus.OK
        and pgconn.transaction_status == TransactionStatus.IDLE
    )


async def configure_connection(conn: AsyncConnection[Any]) -> None:
    """Session settings of the storage's own connections, and their termination watch.

    Public, for a pool the application passes to :class:`PostgresStorage`: give it as the
    pool's ``configure`` callback and its connections plan our statements as the storage's
    own pool does. The settings hold for the whole session, so the pool should serve only the
    storage (``enable_seqscan = off`` also steers the application's own queries away from
    sequential scans).

    Every statement the storage sends has a fixed text with array parameters, and is prepared
    on its first use (``prepare_threshold=0``); forcing the generic plan then skips planning on
    every later execution. The generic plans were chosen to use the indexes (the test suite
    checks each one with ``EXPLAIN`` on a large table).

    A generic plan is made once per connection, on the statement's first run, and kept until
    the table is analyzed again; the table may have grown a hundredfold meanwhile (a new
    installation, a burst of work before autovacuum comes by). Planned on a small table, half
    of the hot statements scanned the whole table (docs/performance.md has the figures), and
    the claim read and sorted every ready row to take the first ``limit`` (a bitmap scan).
    Every statement of ours is built to use an index, so sequential and bitmap scans are
    turned off: the plans then use the indexes whatever the table's size was when they were
    made (the test suite checks each one, planned on 100 rows, run on 10,000).

    JIT compilation is off too: no statement of ours reads more than a batch of rows, but a
    table never analyzed (autovacuum off) or grown since its last statistics gets cost
    estimates past ``jit_above_cost``, and each execution then spent 15-25 ms compiling
    itself; at a million finished executions in a table never analyzed, ``get_execution``
    took 25 ms instead of 0.5 (docs/postgres.md, "Large tables and autovacuum").
    """
    await conn.execute(SESSION_SETTINGS, prepare=False)
    ref = weakref.ref(conn)

    def on_notice(diagnostic: Diagnostic) -> None:
        watched = ref()
        if watched is not None and diagnostic.severity_nonlocalized in _FATAL:
            _doomed.add(watched)

    conn.add_notice_handler(on_notice)


def new_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    timeout_s: float,
    connect_kwargs: dict[str, Any],
    on_connect: Callable[[AsyncConnection[Any]], None] = lambda conn: None,
) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """A closed pool of autocommit connections (open it with ``await pool.open()``);
    ``on_connect`` sees each new connection once configured."""

    async def configure(conn: AsyncConnection[Any]) -> None:
        await configure_connection(conn)
        on_connect(conn)

    return pool_class()(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
        open=False,
        name="durable_execution",
        configure=configure,
        kwargs={"prepare_threshold": 0, **connect_kwargs, "autocommit": True},
    )


async def connect_autocommit(conninfo: str, kwargs: dict[str, Any]) -> AsyncConnection[Any]:
    """A new autocommit connection outside any pool."""
    return await AsyncConnection.connect(conninfo, **{**kwargs, "autocommit": True})


async def connect_like_pool(pool: AsyncConnectionPool[Any]) -> AsyncConnection[Any]:
    """A new autocommit connection to where ``pool`` connects (static or dynamic settings)."""
    conninfo: Any = pool.conninfo
    kwargs: Any = pool.kwargs
    if callable(conninfo):
        conninfo = conninfo()
    if inspect.isawaitable(conninfo):
        conninfo = await conninfo
    if callable(kwargs):
        kwargs = kwargs()
    if inspect.isawaitable(kwargs):
        kwargs = await kwargs
    return await connect_autocommit(str(conninfo), dict(kwargs or {}))


def connect_timeout_kwargs(dsn: str) -> tuple[dict[str, Any], int]:
    """The connection keywords that bound each connection attempt, and that bound in seconds:
    the DSN's ``connect_timeout`` (or ``PGCONNECT_TIMEOUT``) when it has one, else
    :data:`DEFAULT_CONNECT_TIMEOUT_S` (libpq's rules: 0 means psycopg's default, at least
    2 s)."""
    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # psycopg reports a malformed DSN itself, when connecting
        return {}, DEFAULT_CONNECT_TIMEOUT_S
    kwargs: dict[str, Any] = {}
    if "connect_timeout" not in params and "PGCONNECT_TIMEOUT" not in os.environ:
        kwargs["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
    try:
        return kwargs, timeout_from_conninfo({**params, **kwargs})
    except Exception:  # a bad connect_timeout: psycopg reports it when connecting
        return kwargs, DEFAULT_CONNECT_TIMEOUT_S


def describe_dsn(dsn: str) -> str:
    """``dsn`` without its password (and without anything we fail to parse)."""
    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return "<unparsable dsn>"
    shown = [
        f"{key}={params[key]}"
        for key in ("host", "port", "dbname", "user")
        if params.get(key) not in (None, "")
    ]
    return " ".join(shown) or "<default connection>"
