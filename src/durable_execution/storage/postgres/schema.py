"""The PostgreSQL schema: object names, DDL by version, and the idempotent migration.

Everything lives in one schema (``public`` unless told otherwise) under a table prefix
(``de_`` unless told otherwise), so several independent installations can share a database:

- ``<prefix>executions``: one row per execution; times are ``bigint`` milliseconds given by the
  executor's clock (the database clock is never used);
- ``<prefix>workers``: the worker registry, one row per running executor;
- ``<prefix>schema_version``: one row per applied migration.

:func:`ensure_schema` creates or migrates the schema. It first reads the version without any
lock (the common case: nothing to do); otherwise it takes a transaction-level advisory lock
derived from the schema and prefix, so that processes starting together migrate once.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.errors import DuplicateSchema, UniqueViolation
from psycopg.rows import tuple_row

from durable_execution.errors import StorageSchemaError
from durable_execution.storage.inspection import UNSUCCESSFUL_SQL

__all__ = [
    "MIGRATIONS",
    "SLEEPING_INDEX_SUFFIX",
    "SCHEMA_VERSION",
    "Names",
    "ensure_schema",
    "validate_identifiers",
]


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_SCHEMA_LEN = 63
_MAX_PREFIX_LEN = 32  # leaves room for the longest suffix below within PostgreSQL's 63 bytes
_MAX_CHANNEL_LEN = 63

# The statuses of the first schema, as its CHECK constraint lists them; later statuses are
# added by their own migration (the DDL of a migration never changes once released).
_V1_STATUS_VALUES = (
    "('ready', 'running', 'failed', 'timed_out', 'waiting_for_children', 'children_failed', "
    "'waiting_for_on_run_and_children_complete', 'on_run_and_children_complete_failed', "
    "'completed', 'cancelled')"
)
_V6_STATUS_VALUES = _V1_STATUS_VALUES[:-1] + ", 'sleeping')"


def validate_identifiers(schema: str, table_prefix: str) -> None:
    """Raise ``ValueError`` unless ``schema`` and ``table_prefix`` are plain identifiers, and
    ``schema`` is not one of PostgreSQL's system schemas."""
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema):
        raise ValueError(
            f"Invalid schema {schema!r}: use letters, digits and underscores, "
            "not starting with a digit"
        )
    if len(schema) > _MAX_SCHEMA_LEN:
        raise ValueError(f"Invalid schema {schema!r}: at most {_MAX_SCHEMA_LEN} characters")
    if schema.lower() == "information_schema" or schema.lower().startswith("pg_"):
        # pg_catalog, pg_toast, pg_temp_*...: PostgreSQL's own (it reserves the pg_ prefix).
        raise ValueError(
            f"Invalid schema {schema!r}: it is a PostgreSQL system schema "
            "(information_schema or pg_*); choose a schema of your own, such as 'public'"
        )
    if not isinstance(table_prefix, str) or (
        table_prefix and not _IDENTIFIER.fullmatch(table_prefix)
    ):
        raise ValueError(
            f"Invalid table_prefix {table_prefix!r}: use letters, digits and underscores, "
            "not starting with a digit (or an empty prefix)"
        )
    if len(table_prefix) > _MAX_PREFIX_LEN:
        raise ValueError(
            f"Invalid table_prefix {table_prefix!r}: at most {_MAX_PREFIX_LEN} characters"
        )


@dataclass(frozen=True, slots=True)
class Names:
    """The names of everything one installation (schema + table prefix) owns."""

    schema: str
    prefix: str

    @property
    def table_name(self) -> str:
        """The executions table, unqualified."""
        return f"{self.prefix}executions"

    @property
    def version_table_name(self) -> str:
        """The schema version table, unqualified."""
        return f"{self.prefix}schema_version"

    @property
    def workers_table_name(self) -> str:
        """The worker registry's table, unqualified."""
        return f"{self.prefix}workers"

    @property
    def workers_table(self) -> sql.Identifier:
        """The worker registry's table, schema-qualified and quoted."""
        return sql.Identifier(self.schema, self.workers_table_name)

    @property
    def table(self) -> sql.Identifier:
        """The executions table, schema-qualified and quoted."""
        return sql.Identifier(self.schema, self.table_name)

    @property
    def version_table(self) -> sql.Identifier:
        """The schema version table, schema-qualified and quoted."""
        return sql.Identifier(self.schema, self.version_table_name)

    @property
    def primary_key(self) -> str:
        """The name of the executions table's primary key constraint."""
        return f"{self.prefix}executions_pkey"

    def index(self, suffix: str) -> sql.Identifier:
        """An index of the executions table (indexes live in the table's schema)."""
        return sql.Identifier(self.index_name(suffix))

    def index_name(self, suffix: str) -> str:
        """The unqualified name of an index of the executions table."""
        return f"{self.prefix}executions_{suffix}"

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel that wake-ups of this installation use."""
        channel = f"{self.schema}.{self.prefix}wakeup"
        if len(channel.encode()) <= _MAX_CHANNEL_LEN:
            return channel
        digest = hashlib.blake2b(channel.encode(), digest_size=20).hexdigest()
        return f"de_wakeup_{digest}"

    @property
    def lock_key(self) -> int:
        """The advisory lock key that serializes migrations of this installation."""
        data = f"durable_execution\0{self.schema}\0{self.prefix}".encode()
        return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


_V1 = f"""
CREATE TABLE {{table}} (
    execution_id text COLLATE "C" NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    input text NOT NULL,
    status text NOT NULL CHECK (status IN {_V1_STATUS_VALUES}),
    root_execution_id text COLLATE "C",
    parent_execution_id text COLLATE "C",
    index_in_parent integer NOT NULL DEFAULT 0,
    is_finalize boolean NOT NULL DEFAULT false,
    priority bigint NOT NULL DEFAULT 0,
    idempotency_key text COLLATE "C",
    output text,
    run_output text,
    error text,
    retry_attempts integer NOT NULL DEFAULT 0,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    start_at bigint NOT NULL,
    started_at bigint,
    expires_at bigint,
    finished_at bigint,
    children_count integer NOT NULL DEFAULT 0,
    unfinished_children integer NOT NULL DEFAULT 0,
    failed_children integer NOT NULL DEFAULT 0,
    finalize_execution_id text COLLATE "C",
    close_state text NOT NULL DEFAULT 'open' CHECK (close_state IN ('open', 'ready', 'closed')),
    needs_promise_cancellation boolean NOT NULL DEFAULT false,
    executor_id text COLLATE "C",
    lease_token bigint NOT NULL DEFAULT 0,
    CONSTRAINT {{pkey}} PRIMARY KEY (execution_id)
);
CREATE UNIQUE INDEX {{idx_key}} ON {{table}} (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX {{idx_ready}} ON {{table}} (priority DESC, start_at, execution_id)
    WHERE status = 'ready';
CREATE INDEX {{idx_running}} ON {{table}} (expires_at) WHERE status = 'running';
CREATE INDEX {{idx_close}} ON {{table}} (execution_id) WHERE close_state = 'ready';
CREATE INDEX {{idx_advance}} ON {{table}} (execution_id)
    WHERE status = 'waiting_for_children' AND (unfinished_children = 0 OR failed_children > 0);
CREATE INDEX {{idx_children}} ON {{table}} (parent_execution_id, index_in_parent)
    WHERE parent_execution_id IS NOT NULL;
CREATE INDEX {{idx_cancel}} ON {{table}} (executor_id, execution_id)
    WHERE needs_promise_cancellation;
"""

# 2: attributes, free metadata on every execution (the JSON text of an object, or NULL). A
# nullable column without a default: added without rewriting the table.
_V2 = """
ALTER TABLE {table} ADD COLUMN attributes text;
"""

# 3: heartbeat leases. ``timeout_at``, the backstop of a claim (its start plus the task's
# timeout and leeway; a renewed lease never goes past it; NULL in rows claimed by release
# 0.1.0, whose lease is already that long), and ``lease_expiries``, how many times the
# execution's lease expired (a constant default: added without rewriting the table); the
# ready suspects (see transitions.SUSPECT_LEASE_EXPIRIES) get an index of their own, so that
# a claim finds the first one without scanning the others.
_V3 = """
ALTER TABLE {table} ADD COLUMN timeout_at bigint;
ALTER TABLE {table} ADD COLUMN lease_expiries integer NOT NULL DEFAULT 0;
CREATE INDEX {idx_suspect} ON {table} (priority DESC, start_at, execution_id)
    WHERE status = 'ready' AND lease_expiries >= 2;
"""

# The worker registry: one row per executor that runs (storage/workers.py); ``task_ids`` in
# the executions' collation, to compare with their ``task_id``. The heartbeat index serves
# every read: without it, a sequential scan (disabled on the storage's connections, so priced
# at 10^10) would have PostgreSQL JIT-compile each read of a few rows, ~150 ms. Its number
# follows the executions table's migrations.
WORKERS_VERSION = 4
SLEEPING_INDEX_SUFFIX = "sleeping_idx"
_V_WORKERS = """
CREATE TABLE {workers} (
    executor_id text COLLATE "C" NOT NULL,
    host text NOT NULL,
    pid bigint NOT NULL,
    task_ids text[] COLLATE "C" NOT NULL,
    started_at bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    CONSTRAINT {workers_pkey} PRIMARY KEY (executor_id)
);
CREATE INDEX {workers_heartbeat_idx} ON {workers} (heartbeat_at);
"""

# 5: settled children. ``children_policy``, how a parent treats a child that does not
# complete (see durable_execution.children_policy); rows of earlier releases are
# ``fail_fast``, the only policy they knew (a constant default: added without rewriting the
# table).
SETTLED_VERSION = 5
_V_SETTLED = """
ALTER TABLE {table} ADD COLUMN children_policy text NOT NULL DEFAULT 'fail_fast'
    CHECK (children_policy IN ('fail_fast', 'all_settled'));
"""

# 6: sleeping executions (``executor.sleeping_task``). The status ``sleeping`` joins the
# CHECK constraint (``NOT VALID``: the rows already stored need no scan, they hold older
# statuses); ``unique_id``, the id a wake-up finds a sleeping execution by, is unique per
# task among the sleeping ones (a finished execution's id may be used again), and indexed
# for all of them (a late wake-up reads the finished one); the sleeping ones are found by
# their deadline (``expires_at``) when they time out.
SLEEPING_VERSION = 6
_V_SLEEPING = f"""
ALTER TABLE {{table}} DROP CONSTRAINT IF EXISTS {{status_check}};
ALTER TABLE {{table}} ADD CONSTRAINT {{status_check}}
    CHECK (status IN {_V6_STATUS_VALUES}) NOT VALID;
ALTER TABLE {{table}} ADD COLUMN unique_id text COLLATE "C";
CREATE UNIQUE INDEX {{idx_sleeping}} ON {{table}} (task_id, unique_id)
    WHERE status = 'sleeping';
CREATE INDEX {{idx_sleep_deadline}} ON {{table}} (expires_at) WHERE status = 'sleeping';
CREATE INDEX {{idx_unique_id}} ON {{table}} (task_id, unique_id) WHERE unique_id IS NOT NULL;
"""

# 7: the query ability (postgres/inspection.py). A listing goes by the primary key, newest
# first (ids begin with their creation time), and no index serves a filter on every row: a
# status change is never a HOT update here (``status`` is in the claims' index conditions),
# so each index that holds every row would get an entry on every change of every execution,
# which cost the write path a quarter of its speed. The two indexes below hold only the
# unsuccessful executions (all of them, or by task): a row that is not and does not become
# unsuccessful never enters them. Plain CREATE INDEX (a migration runs in a transaction): it
# holds off writes while it builds, about a second per million rows.
QUERIES_VERSION = 7
_V_QUERIES = f"""
CREATE INDEX {{idx_unsuccessful}} ON {{table}} (execution_id)
    WHERE status IN {UNSUCCESSFUL_SQL};
CREATE INDEX {{idx_unsuccessful_task}} ON {{table}} (task_id, execution_id)
    WHERE status IN {UNSUCCESSFUL_SQL};
"""

# 8: autovacuum settings of the executions table, for servers where autovacuum is on (where it
# is off, the executors vacuum it themselves: see storage/postgres/maintenance.py). Every
# status change leaves a dead row version behind; the server's defaults wait until 20% of the
# table is dead (two million dead rows in a table of ten million, and as many stale entries in
# the partial indexes the hot statements read). Here autovacuum comes after 1% (plus 1,000
# rows), analyzes after 2%, and visits after 1% of inserts (it sets the visibility map, which
# makes the next passes skip the unchanged pages). No fillfactor: the status is in the
# partial indexes' predicates, so no status change can be a HOT update whatever the free
# space. (Storage parameters only: nothing is rewritten.)
STORAGE_PARAMETERS_VERSION = 8
_V_STORAGE_PARAMETERS = """
ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.01);
"""

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (WORKERS_VERSION, _V_WORKERS),
    (SETTLED_VERSION, _V_SETTLED),
    (SLEEPING_VERSION, _V_SLEEPING),
    (QUERIES_VERSION, _V_QUERIES),
    (STORAGE_PARAMETERS_VERSION, _V_STORAGE_PARAMETERS),
)
"""``(version, DDL script)`` in order; the scripts' ``{name}`` fields are filled by
:func:`_render`. Migrations only add (tables, columns, indexes), so executors of the previous
release keep working on a migrated database while a rolling upgrade goes on."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
"""The schema version this code writes and reads."""


def _render(template: str, names: Names) -> sql.Composed:
    fields: dict[str, Any] = {
        "table": names.table,
        "workers": names.workers_table,
        "workers_pkey": sql.Identifier(f"{names.prefix}workers_pkey"),
        "workers_heartbeat_idx": sql.Identifier(f"{names.prefix}workers_heartbeat_idx"),
        "pkey": sql.Identifier(names.primary_key),
        "idx_key": names.index("idempotency_key_idx"),
        "idx_ready": names.index("ready_idx"),
        "idx_running": names.index("running_idx"),
        "idx_close": names.index("close_idx"),
        "idx_advance": names.index("advance_idx"),
        "idx_children": names.index("children_idx"),
        "idx_cancel": names.index("cancel_idx"),
        "idx_suspect": names.index("suspect_idx"),
        "idx_unsuccessful": names.index("unsuccessful_idx"),
        "idx_unsuccessful_task": names.index("unsuccess_task_idx"),
        "idx_sleeping": names.index(SLEEPING_INDEX_SUFFIX),
        "idx_sleep_deadline": names.index("sleep_deadline_idx"),
        "idx_unique_id": names.index("unique_id_idx"),
        "status_check": sql.Identifier(f"{names.table_name}_status_check"),
    }
    return sql.SQL(template).format(**fields)


async def _tables_present(conn: AsyncConnection[Any], names: Names) -> tuple[bool, bool]:
    """Whether the version table and the executions table exist."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(
        "SELECT to_regclass(format('%%I.%%I', %(s)s::text, %(v)s::text)) IS NOT NULL, "
        "to_regclass(format('%%I.%%I', %(s)s::text, %(t)s::text)) IS NOT NULL",
        {"s": names.schema, "v": names.version_table_name, "t": names.table_name},
    )
    row = await cur.fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


async def _stored_version(conn: AsyncConnection[Any], names: Names) -> int | None:
    """The stored schema version; ``None`` when nothing is installed yet."""
    has_versions, has_table = await _tables_present(conn, names)
    where = f"{names.schema}.{names.prefix}*"
    if not has_versions:
        if has_table:
            raise StorageSchemaError(
                f"{where}: the table {names.table_name} exists but durable_execution did not "
                "create it (no schema version table); use another schema or table_prefix"
            )
        return None
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(sql.SQL("SELECT max(version) FROM {}").format(names.version_table))
    row = await cur.fetchone()
    version = None if row is None else row[0]
    if not isinstance(version, int):
        raise StorageSchemaError(f"{where}: the schema version table is empty or corrupt")
    if version > SCHEMA_VERSION:
        raise StorageSchemaError(
            f"{where} was written by a newer durable_execution (schema version {version}, "
            f"this version reads up to {SCHEMA_VERSION}); upgrade durable_execution"
        )
    if not has_table:
        raise StorageSchemaError(f"{where}: the table {names.table_name} is missing")
    return version


async def _create_schema(conn: AsyncConnection[Any], names: Names) -> None:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [names.schema])
    if await cur.fetchone() is not None:
        return
    try:
        async with conn.transaction():  # a savepoint: another prefix may create it meanwhile
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.schema)),
                prepare=False,
            )
    except (UniqueViolation, DuplicateSchema):
        pass


async def ensure_schema(conn: AsyncConnection[Any], names: Names) -> None:
    """Create or migrate the schema of ``names``; a no-op when it is current.

    Raises :class:`StorageSchemaError` when the stored version is newer than
    :data:`SCHEMA_VERSION`, or the tables are not ours.
    """
    if await _stored_version(conn, names) == SCHEMA_VERSION:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", [names.lock_key])
        await _create_schema(conn, names)
        version = await _stored_version(conn, names)
        script: list[sql.Composable] = []
        if version is None:
            script.append(
                sql.SQL(
                    "CREATE TABLE {} (version integer PRIMARY KEY, applied_at_ms bigint NOT NULL)"
                ).format(names.version_table)
            )
            version = 0
        applied_at = sql.Literal(int(time.time() * 1000))
        for target, template in MIGRATIONS:
            if target > version:
                script.append(_render(template, names))
                script.append(
                    sql.SQL("INSERT INTO {} (version, applied_at_ms) VALUES ({}, {})").format(
                        names.version_table, sql.Literal(target), applied_at
                    )
                )
        if script:  # one round trip: the simple query protocol runs several statements
            await conn.execute(sql.SQL(";\n").join(script), prepare=False)
