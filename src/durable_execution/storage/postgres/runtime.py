"""The plumbing under :class:`PostgresStorage`: pool life cycle, schema check, wake-up
listener, and running an operation with retries and error translation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.errors import DeadlockDetected, SerializationFailure, UniqueViolation
from psycopg_pool import AsyncConnectionPool

from durable_execution.checks import check_int
from durable_execution.errors import (
    DuplicateExecutionError,
    DuplicateUniqueIdError,
    DurableStorageError,
)
from durable_execution.storage.listeners import WakeUpListeners
from durable_execution.storage.postgres.connections import (
    connect_autocommit,
    connect_like_pool,
    connect_timeout_kwargs,
    describe_dsn,
    is_usable,
    new_pool,
)
from durable_execution.storage.postgres.maintenance import warn_if_off
from durable_execution.storage.postgres.notify import NotificationListener
from durable_execution.storage.postgres.schema import SLEEPING_INDEX_SUFFIX, Names, ensure_schema
from durable_execution.storage.records import WorkKind

__all__ = ["PoolSettings", "Runtime"]

T = TypeVar("T")
Pool = AsyncConnectionPool[AsyncConnection[Any]]
_log = logging.getLogger("durable_execution.storage.postgres")
_ATTEMPTS = 3  # of an operation rolled back by a deadlock or a serialization failure
MAX_POOL_SIZE = 1_000
"""The most connections a storage's own pool may hold (``max_pool_size``)."""
MAX_POOL_TIMEOUT_S = 3_600
"""The longest wait for a pooled connection (``pool_timeout_s``): an hour."""


class PoolSettings:
    """How the storage's own pool is made (when it is given a DSN)."""

    def __init__(
        self,
        *,
        min_size: int,
        max_size: int,
        timeout_s: float,
        application_name: str | None,
    ) -> None:
        check_int("min_pool_size", min_size, minimum=0, maximum=MAX_POOL_SIZE)
        check_int("max_pool_size", max_size, minimum=max(1, min_size), maximum=MAX_POOL_SIZE)
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, int | float)
            or not 0 < timeout_s <= MAX_POOL_TIMEOUT_S
        ):
            raise ValueError(
                f"Invalid option pool_timeout_s={timeout_s!r}: expected a number of seconds "
                f"above 0 and at most {MAX_POOL_TIMEOUT_S}"
            )
        self.min_size = min_size
        self.max_size = max_size
        self.timeout_s = timeout_s
        self.connect_kwargs: dict[str, Any] = (
            {} if application_name is None else {"application_name": application_name}
        )


class Runtime:
    """Opens the pool (and the schema) on first use, closes and reopens it, keeps the LISTEN
    connection while there are wake-up listeners, and runs operations."""

    def __init__(
        self,
        dsn_or_pool: str | AsyncConnectionPool[Any],
        names: Names,
        settings: PoolSettings,
        *,
        listen: bool,
    ) -> None:
        self._pool: Pool | None
        if isinstance(dsn_or_pool, str):
            self._dsn: str | None = dsn_or_pool
            self._pool = None
        elif isinstance(dsn_or_pool, AsyncConnectionPool):
            self._dsn = None
            self._pool = dsn_or_pool
        else:
            raise TypeError("dsn_or_pool must be a connection string or an AsyncConnectionPool")
        self._owns_pool = self._dsn is not None
        self.names = names
        self._settings = settings
        # Each connection attempt of our own is bounded by the DSN's connect_timeout, or ours.
        timeout_kwargs, self._connect_timeout_s = connect_timeout_kwargs(self._dsn or "")
        self._connect_kwargs = {**settings.connect_kwargs, **timeout_kwargs}
        self._listen = listen
        self._listeners = WakeUpListeners()
        self._listener_count = 0
        # Backends of this storage's own pool: with one listener (one executor), it already
        # woke itself for the work its own statements created; their echo is dropped.
        self._own_pids: set[int] = set()
        self._autovacuum_checked = False
        self._notifier: NotificationListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False
        self._open_lock: asyncio.Lock | None = None

    def describe(self) -> str:
        """Where the storage connects, without any password."""
        if self._dsn is not None:
            return describe_dsn(self._dsn)
        return f"pool={getattr(self._pool, 'name', '?')}"

    @property
    def is_listening(self) -> bool:
        """Whether the LISTEN connection is up."""
        return self._notifier is not None and self._notifier.listening

    # -- pool and schema ---------------------------------------------------------------------

    async def ensure_ready(self) -> Pool:
        """The open pool, after the schema was checked (created or migrated) once."""
        pool = self._pool
        if self._ready and pool is not None:
            return pool
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._ready:
                await self._open()
        assert self._pool is not None
        return self._pool

    async def _open(self) -> None:
        if self._pool is None:
            await self._check_schema_first()
            assert self._dsn is not None
            settings = self._settings
            self._pool = new_pool(
                self._dsn,
                min_size=settings.min_size,
                max_size=settings.max_size,
                timeout_s=settings.timeout_s,
                connect_kwargs=self._connect_kwargs,
                on_connect=lambda conn: self._own_pids.add(conn.info.backend_pid),
            )
        pool = self._pool
        try:
            if pool.closed:
                if self._owns_pool:
                    await pool.open(wait=True, timeout=self._settings.timeout_s)
                else:
                    await pool.open()
            if not self._owns_pool:
                async with self._connection(pool) as conn:
                    await ensure_schema(conn, self.names)
        except BaseException as exc:
            if self._owns_pool:
                self._pool = None
                await pool.close()
            if isinstance(exc, psycopg.Error):
                raise DurableStorageError(
                    f"PostgreSQL storage could not initialize ({self.describe()}): {exc}",
                    is_transient=isinstance(exc, psycopg.OperationalError),
                ) from exc
            raise
        self._loop = asyncio.get_running_loop()
        self._ready = True
        self._start_notifier()
        if not self._autovacuum_checked:
            self._autovacuum_checked = True
            await self._check_autovacuum(pool)

    async def _check_autovacuum(self, pool: Pool) -> None:
        """Log the WARNING of :func:`~.maintenance.warn_if_off` once per storage object (a
        failure to ask is logged at DEBUG: the storage works without the answer)."""
        try:
            async with self._connection(pool) as conn:
                await warn_if_off(conn, self.names)
        except psycopg.Error as exc:
            _log.debug("could not read the server's autovacuum setting: %s", exc)

    async def _check_schema_first(self) -> None:
        """Connect once, outside the pool, and check the schema on that connection.

        A pool that cannot connect keeps trying in the background until its ``timeout``
        (``pool_timeout_s``, 10 s by default) whatever the server answered: a refused
        connection took that long to report. One plain attempt reports an unreachable
        server at once, or after ``connect_timeout`` for a server that does not answer.
        """
        assert self._dsn is not None
        try:
            conn = await connect_autocommit(self._dsn, self._connect_kwargs)
        except psycopg.Error as exc:
            raise DurableStorageError(
                f"PostgreSQL server unreachable ({self.describe()}, connect_timeout "
                f"{self._connect_timeout_s} s): {exc}",
                is_transient=True,
            ) from exc
        try:
            await ensure_schema(conn, self.names)
        except psycopg.Error as exc:
            raise DurableStorageError(
                f"PostgreSQL storage could not initialize ({self.describe()}): {exc}",
                is_transient=isinstance(exc, psycopg.OperationalError),
            ) from exc
        finally:
            await conn.close()

    async def close(self) -> None:
        """Stop listening and close the pool if it is ours; idempotent."""
        notifier, self._notifier = self._notifier, None
        self._ready = False
        self._open_lock = None
        self._loop = None
        if notifier is not None:
            await notifier.stop()
        if self._owns_pool and self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # -- wake-ups ----------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[WorkKind], None]) -> Callable[[], None]:
        """Register ``listener``; start the LISTEN connection if it is not running."""
        remove_from_registry = self._listeners.add(listener)
        self._listener_count += 1
        removed = False

        def remove() -> None:
            nonlocal removed
            if not removed:
                removed = True
                self._listener_count -= 1
                remove_from_registry()

        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            self._start_notifier()
        elif self._loop is not None:  # called from another thread: start it in the loop
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(self._start_notifier)
        return remove

    def _start_notifier(self) -> None:
        if not self._listen or self._listener_count <= 0:
            return
        if self._notifier is None:
            self._notifier = NotificationListener(
                connect=self._connect_listener,
                channel=self.names.channel,
                dispatch=self._dispatch,
            )
        self._notifier.start()

    async def _connect_listener(self) -> AsyncConnection[Any]:
        return await self.connect_dedicated()

    async def connect_dedicated(self) -> AsyncConnection[Any]:
        """A new autocommit connection outside the pool, made as the pool makes its own
        (the caller closes it): for the LISTEN connection and the maintenance's VACUUM."""
        if self._dsn is not None:
            return await connect_autocommit(self._dsn, self._connect_kwargs)
        assert self._pool is not None
        return await connect_like_pool(self._pool)

    def notify_here(self, kinds: Collection[WorkKind]) -> None:
        """Tell this storage object's listeners of work at once, in this process: for a
        change made on behalf of no listener (a wake-up from a web handler), whose NOTIFY
        the listeners skip as their own (see :meth:`_dispatch`)."""
        self._listeners.notify(kinds)

    def _dispatch(self, kind: WorkKind, sender_pid: int | None = None) -> None:
        if sender_pid in self._own_pids and self._listener_count == 1:
            return
        self._listeners.notify((kind,))

    # -- operations --------------------------------------------------------------------------

    def _error(self, action: str, exc: psycopg.Error) -> DurableStorageError:
        if isinstance(exc, UniqueViolation) and exc.diag.constraint_name == self.names.primary_key:
            detail = exc.diag.message_detail or str(exc)
            return DuplicateExecutionError(f"Execution id already exists: {detail}")
        if isinstance(exc, UniqueViolation) and exc.diag.constraint_name == self.names.index_name(
            SLEEPING_INDEX_SUFFIX
        ):
            detail = exc.diag.message_detail or str(exc)
            return DuplicateUniqueIdError(
                f"A sleeping task already has an unfinished execution with this unique id: {detail}"
            )
        # OperationalError: the connection or the server failed (lost connection, server
        # shutting down or starting, pool timeout, deadlock): not the statement's fault.
        return DurableStorageError(
            f"PostgreSQL storage failed to {action}: {exc}",
            is_transient=isinstance(exc, psycopg.OperationalError),
        )

    @staticmethod
    @contextlib.asynccontextmanager
    async def _connection(pool: Pool) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection that looks usable (see :func:`is_usable`), committed (unless in
        autocommit mode) and given back at the end.

        Dead idle connections are closed and given back, which makes the pool replace them,
        and the next one is tried at once (the pool's own ``check`` would back off between
        attempts, a second or more after a server restart).
        """
        conn = await pool.getconn()
        for _ in range(pool.max_size):
            if is_usable(conn):
                break
            await conn.close()
            await pool.putconn(conn)
            conn = await pool.getconn()
        try:
            yield conn
            if not conn.autocommit:
                await conn.commit()
        except BaseException:
            if not conn.autocommit and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
            raise
        finally:
            await pool.putconn(conn)

    async def run_on(
        self,
        connection: AsyncConnection[Any],
        action: str,
        body: Callable[[AsyncConnection[Any]], Awaitable[T]],
    ) -> T:
        """Run ``body`` on the caller's connection, inside whatever transaction it has open.

        Nothing is committed or retried here: the caller's transaction decides, and an error
        (turned into a storage error) leaves that transaction for the caller to roll back.
        """
        await self.ensure_ready()
        try:
            return await body(connection)
        except psycopg.Error as exc:
            raise self._error(action, exc) from exc

    async def run_dedicated(
        self, action: str, body: Callable[[AsyncConnection[Any]], Awaitable[T]]
    ) -> T:
        """Run ``body`` on a connection of its own (:meth:`connect_dedicated`), closed after;
        driver errors become storage errors. For long statements that must not hold a pooled
        connection, or cannot run in a transaction block (``VACUUM``)."""
        await self.ensure_ready()
        try:
            conn = await self.connect_dedicated()
            try:
                return await body(conn)
            finally:
                await conn.close()
        except psycopg.Error as exc:
            raise self._error(action, exc) from exc

    async def run(self, action: str, body: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run ``body`` on a pooled connection; retry it after a deadlock or serialization
        failure (which rolled it back), and turn driver errors into storage errors."""
        pool = await self.ensure_ready()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._connection(pool) as conn:
                    return await body(conn)
            except (DeadlockDetected, SerializationFailure) as exc:
                if attempt == _ATTEMPTS:
                    raise self._error(action, exc) from exc
            except psycopg.Error as exc:
                raise self._error(action, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover
