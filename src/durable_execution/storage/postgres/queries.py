"""The SQL of every operation, rendered once per installation (schema + table prefix).

Conventions:

- the current time is ``{now}`` and executor-computed start times get ``{shift}``, filled at
  rendering from ``fragments.CLOCKS``: the server's clock by default, the executor's
  ``%(now)s`` for deterministic tests (the storage's ``clock`` option);
- batches arrive as parallel arrays that are ``unnest``-ed, so a batch of any size is one
  statement with a fixed text (prepared once per connection);
- rows to take are picked with ``FOR UPDATE SKIP LOCKED``: concurrent executors never wait for
  one another's rows, nor receive the same row;
- an ``UPDATE`` joined to a batch of outcomes (``FROM o``) also says
  ``execution_id = ANY(ARRAY(SELECT execution_id FROM o))``: the rows are then looked up by
  primary key whatever the statistics say. Without it, on a table that grew since it was
  last analyzed (a young table, a benchmark), the planner hash-joins the batch with a
  sequential scan of the whole table (docs/performance.md has the figures). The claims and
  the closure (``FROM picked``, ``FROM batch``) do without: there the same condition slowed
  the 1,000-children fan-out (W3) down. With the settings of the
  storage's own connections (generic plans, no sequential or bitmap scans: see
  ``connections.py``) their plans use the indexes even then; on a pool the caller passes, a
  stale plan may cost them a scan of a young, still small table;
- a statement that creates work sends its wake-ups itself: a final ``UNION ALL`` branch calls
  ``pg_notify(channel, kind)`` once per kind of work its data-modifying CTEs created (see
  :func:`_notify_tail`), so the notification is part of the statement's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from durable_execution.storage.postgres.fragments import (
    CLOCKS,
    COLS,
    NOW,
    SHIFT,
    cols,
    exists,
    notify_tail,
)
from durable_execution.storage.postgres.lease_queries import CLAIM_READY, EXPIRE, RELEASE, RENEW
from durable_execution.storage.postgres.rows import (
    COLUMNS,
    FINISH_FIELDS,
    INSERT_FIELDS,
    SLEEPING_INSERT_FIELDS,
    SUCCEED_FIELDS,
)
from durable_execution.storage.postgres.schema import Names
from durable_execution.storage.sql_rules import (
    FINISHED_SQL,
    advanceable_sql,
    counted_failures_sql,
    finish_close_state_sql,
    outcome_close_state_sql,
)

__all__ = ["CHILD_IDS", "Queries"]

_COLS = COLS
_NOW = NOW
# A list of ids as one JSON parameter (far cheaper to send than a text[] of thousands).
_JSON_IDS = "ARRAY(SELECT json_array_elements_text(%(ids)s::json))"
_ADVANCEABLE = advanceable_sql()
_cols, _exists, _notify_tail = cols, exists, notify_tail


def _json_rows(fields: Sequence[tuple[str, str]]) -> str:
    """A ``SELECT`` of the rows of the JSON batch ``%(batch)s``: one JSON array per row, whose
    values are ``fields`` (``(name, SQL type)``, see rows.py) in order."""
    columns = ", ".join(f"(r ->> {i})::{kind} AS {name}" for i, (name, kind) in enumerate(fields))
    return f"SELECT {columns} FROM jsonb_array_elements(%(batch)s::jsonb) AS r"


def _lock_families(outcomes: str, finished: str) -> str:
    """CTEs ``family`` and ``parents``: the children that the outcomes ``outcomes`` (a
    relation with ``execution_id``, ``expected`` and ``lease_token``) may close
    (``finished``: which of them finish their execution) and their parents, the unfinished
    ones locked together in id order before any of them is updated: the one lock order of
    the closers (``_CLOSE``), so that an outcome and a closer cannot deadlock over a parent
    and its child. Only children still as their outcome expects are looked at (a stale
    outcome locks nothing); roots lock nothing here."""
    return f"""family AS MATERIALIZED (
    SELECT c.execution_id, c.parent_execution_id FROM {{t}} AS c JOIN {outcomes} AS x
        ON x.execution_id = c.execution_id
    WHERE c.execution_id = ANY(ARRAY(SELECT execution_id FROM {outcomes}))
        AND {finished} AND c.parent_execution_id IS NOT NULL AND NOT c.is_finalize
        AND c.status = x.expected AND c.lease_token = x.lease_token
), parents AS MATERIALIZED (
    SELECT execution_id FROM {{t}}
    WHERE execution_id = ANY(ARRAY(
            SELECT execution_id FROM family UNION ALL SELECT parent_execution_id FROM family))
        AND status NOT IN {{finished}}
    ORDER BY execution_id
    FOR UPDATE
)"""


# The parents of the children closed by their outcomes (``upd`` returns ``close_state``,
# ``parent_execution_id`` and ``status``): the closure's update of the parent
# (transitions.apply_outcome_close), once per parent; a finished parent is left as it is.
_CLOSE_IN_PARENTS = f"""closed_in AS (
    SELECT parent_execution_id AS execution_id, count(*)::int AS n_closed,
        (count(*) FILTER (WHERE status <> 'completed'))::int AS n_failed
    FROM upd WHERE close_state = 'closed' AND parent_execution_id IS NOT NULL
    GROUP BY parent_execution_id
), in_parents AS (
    UPDATE {{t}} AS p SET
        unfinished_children = GREATEST(0, p.unfinished_children - x.n_closed),
        failed_children = p.failed_children + {counted_failures_sql("p", "x.n_failed")},
        updated_at = {_NOW}
    FROM closed_in AS x
    WHERE p.execution_id = ANY(ARRAY(SELECT execution_id FROM closed_in))
        AND p.execution_id = x.execution_id AND p.status NOT IN {{finished}}
    RETURNING p.status, p.unfinished_children, p.failed_children
)"""
_PARENT_ADVANCEABLE = _exists("in_parents", _ADVANCEABLE)


def _insert_rows(p: str, *, owner: bool = False) -> str:
    """``INSERT`` of new rows, with idempotency keys, from arrays named ``{p}ids``,
    ``{p}task_ids``, ...; with ``owner``, only the rows whose ``{p}owners`` entry is an ``ord``
    of CTE ``upd``."""
    owners = f", %({p}owners)s::int[]" if owner else ""
    source = f"""unnest(%({p}ids)s::text[], %({p}task_ids)s::text[], %({p}inputs)s::text[],
    %({p}roots)s::text[], %({p}parents)s::text[], %({p}indexes)s::int[],
    %({p}completions)s::boolean[], %({p}priorities)s::bigint[], %({p}keys)s::text[],
    %({p}start_ats)s::bigint[], %({p}claimed_by)s::text[], %({p}claim_leases)s::bigint[],
    %({p}attributes)s::text[], %({p}claim_timeouts)s::bigint[], %({p}unique_ids)s::text[],
    %({p}sleep_timeouts)s::bigint[]{owners})
    AS u(execution_id, task_id, input, root_execution_id, parent_execution_id, index_in_parent,
         is_finalize, priority, idempotency_key, start_at, claimed_by, claim_lease, attributes,
         claim_timeout, unique_id, sleep_timeout{", owner" if owner else ""})"""
    where = "WHERE n.owner IN (SELECT ord FROM upd)" if owner else ""
    return _insert_new(source, keys=True, where=where)


def _insert_new(source: str, *, keys: bool = False, where: str = "", sleeping: bool = True) -> str:
    """``INSERT`` of new rows from ``source`` (its columns named as the fields of
    ``NewExecution``, ``start_at``, ``claim_lease`` and ``claim_timeout``, as
    ``transitions.inserted_claim`` gives them; with ``keys``, ``idempotency_key`` too; with
    ``sleeping``, ``unique_id`` and ``sleep_timeout``), filtered by ``where`` (on alias
    ``n``): ``ready``, or inserted claimed when ``claimed_by`` is set, or ``sleeping`` until
    ``now + sleep_timeout`` when ``unique_id`` is (see ``NewExecution``)."""
    key, key_value = (" idempotency_key,", " n.idempotency_key,") if keys else ("", "")
    if sleeping:
        status = (
            "CASE WHEN n.unique_id IS NOT NULL THEN 'sleeping' "
            "WHEN n.claimed_by IS NULL THEN 'ready' ELSE 'running' END"
        )
        deadline = f"WHEN n.unique_id IS NOT NULL THEN {_NOW} + n.sleep_timeout "
        unique_column, unique_value = ", unique_id", ", n.unique_id"
    else:
        status = "CASE WHEN n.claimed_by IS NULL THEN 'ready' ELSE 'running' END"
        deadline = unique_column = unique_value = ""
    return f"""INSERT INTO {{t}} (execution_id, task_id, input, status, root_execution_id,
        parent_execution_id, index_in_parent, is_finalize, priority,{key}
        created_at, updated_at, start_at, executor_id, lease_token, started_at, expires_at,
        timeout_at, attributes{unique_column})
    SELECT n.execution_id, n.task_id, n.input, {status}, n.root_execution_id,
        n.parent_execution_id, n.index_in_parent, n.is_finalize, n.priority,{key_value}
        {_NOW}, {_NOW}, n.start_at{SHIFT}, n.claimed_by,
        CASE WHEN n.claimed_by IS NULL THEN 0 ELSE 1 END,
        CASE WHEN n.claimed_by IS NULL THEN NULL ELSE {_NOW} END,
        CASE {deadline}WHEN n.claimed_by IS NULL THEN NULL ELSE {_NOW} + n.claim_lease END,
        CASE {deadline}WHEN n.claimed_by IS NULL THEN NULL ELSE {_NOW} + n.claim_timeout END,
        n.attributes{unique_value}
    FROM (SELECT * FROM {source}) AS n
    {where}"""


# One statement: the fenced update of every outcome, the children of those that applied, and
# the wake-ups. ``kind``: 0 retry, 1 wait for children, 2 wait for the completion task,
# 3 finished (see rows.py); the SET mirrors transitions.apply_outcome.
_OUTCOMES = f"""
WITH o AS (
    SELECT * FROM unnest(
        %(ords)s::int[], %(ids)s::text[], %(tokens)s::bigint[], %(expected)s::text[],
        %(statuses)s::text[], %(kinds)s::int[], %(outputs)s::text[], %(run_outputs)s::text[],
        %(errors)s::text[], %(start_ats)s::bigint[], %(counts)s::int[], %(completion_ids)s::text[],
        %(policies)s::text[]
    ) AS o(ord, execution_id, lease_token, expected, status, kind, output, run_output, error,
           start_at, n_children, completion_id, children_policy)
), {_lock_families("o", "x.kind = 3")}, upd AS (
    UPDATE {{t}} AS e SET
        status = o.status,
        updated_at = {_NOW},
        executor_id = NULL,
        expires_at = NULL,
        run_output = COALESCE(o.run_output, e.run_output),
        retry_attempts = e.retry_attempts + CASE WHEN o.kind = 0 THEN 1 ELSE 0 END,
        start_at = CASE WHEN o.kind = 0 THEN o.start_at{SHIFT} ELSE e.start_at END,
        error = CASE WHEN o.kind IN (0, 3) THEN o.error ELSE e.error END,
        output = CASE WHEN o.kind = 3 THEN o.output ELSE e.output END,
        children_count = e.children_count + CASE WHEN o.kind = 1 THEN o.n_children ELSE 0 END,
        unfinished_children = CASE
            WHEN o.kind = 1 THEN e.unfinished_children + o.n_children
            WHEN o.kind = 2 THEN o.n_children
            ELSE e.unfinished_children END,
        finalize_execution_id =
            CASE WHEN o.kind = 2 THEN o.completion_id ELSE e.finalize_execution_id END,
        children_policy =
            CASE WHEN o.kind = 1 THEN o.children_policy ELSE e.children_policy END,
        finished_at = CASE WHEN o.kind = 3 THEN {_NOW} ELSE e.finished_at END,
        close_state = CASE WHEN o.kind <> 3 THEN e.close_state
            ELSE {
    outcome_close_state_sql("e", "o.status", "e.parent_execution_id = ANY(%(ids)s::text[])")
} END
    FROM o
    WHERE e.execution_id = ANY(%(ids)s::text[])
        AND e.execution_id = o.execution_id AND e.status = o.expected
        AND e.lease_token = o.lease_token AND (SELECT count(*) FROM parents) >= 0
    RETURNING o.ord, e.status, e.close_state, e.unfinished_children, e.failed_children,
        e.parent_execution_id, e.updated_at
), {_CLOSE_IN_PARENTS}, ins AS (
    {_insert_rows("c_", owner=True)}
    RETURNING status
)
SELECT ord, status, close_state, unfinished_children, failed_children, updated_at FROM upd
UNION ALL
SELECT NULL, NULL, 'advance', NULL, NULL, NULL WHERE {_PARENT_ADVANCEABLE}
{
    _notify_tail(
        6,
        [
            (
                "ready",
                _exists("upd", "status = 'ready'") + " OR " + _exists("ins", "status = 'ready'"),
            ),
            ("close", _exists("upd", "close_state = 'ready'")),
            ("advance", _exists("upd", _ADVANCEABLE) + " OR " + _PARENT_ADVANCEABLE),
        ],
    )
}
"""

# The common outcome, runs that finished without children, as one plain UPDATE: the batch is
# one JSON parameter (``json.dumps`` is much cheaper than dumping a dozen arrays); the SET
# mirrors transitions.apply_outcome for a finished status and closes_at_once.
_FINISH = f"""
WITH o AS MATERIALIZED (
    {_json_rows(FINISH_FIELDS)}
), {_lock_families("o", "true")}, upd AS (
    UPDATE {{t}} AS e SET
        status = o.status,
        output = o.output,
        error = o.error,
        run_output = COALESCE(o.run_output, e.run_output),
        updated_at = {_NOW},
        finished_at = {_NOW},
        executor_id = NULL,
        expires_at = NULL,
        close_state = {
    outcome_close_state_sql(
        "e", "o.status", "e.parent_execution_id = ANY(ARRAY(SELECT execution_id FROM o))"
    )
}
    FROM o
    WHERE e.execution_id = ANY(ARRAY(SELECT execution_id FROM o))
        AND e.execution_id = o.execution_id AND e.status = o.expected
        AND e.lease_token = o.lease_token AND (SELECT count(*) FROM parents) >= 0
    RETURNING o.ord, e.close_state, e.parent_execution_id, e.status, e.updated_at
), {_CLOSE_IN_PARENTS}
SELECT ord, close_state, updated_at FROM upd
UNION ALL
SELECT NULL, 'advance', NULL WHERE {_PARENT_ADVANCEABLE}
{
    _notify_tail(
        3,
        [
            ("close", _exists("upd", "close_state = 'ready'")),
            ("advance", _PARENT_ADVANCEABLE),
        ],
    )
}
"""

# Children that completed and hand over to their successors (ExecutionOutcome.successor), one
# JSON batch: the parents are locked first, in id order, as closers lock them (a closer that
# cancels a parent's children holds the parent before it touches a child); then the fenced
# update of each child (closed at once), one more child counted in each parent, and the
# successors inserted. As any completed outcome (transitions.apply_outcome), a child clears the
# error of an earlier attempt.
_SUCCEED = f"""
WITH o AS (
    {_json_rows(SUCCEED_FIELDS)}
), parents AS MATERIALIZED (
    SELECT execution_id FROM {{t}}
    WHERE execution_id = ANY(ARRAY(SELECT s_parent FROM o))
    ORDER BY execution_id
    FOR UPDATE
), upd AS (
    UPDATE {{t}} AS e SET
        status = 'completed',
        output = o.output,
        error = NULL,
        run_output = COALESCE(o.run_output, e.run_output),
        updated_at = {_NOW},
        finished_at = {_NOW},
        executor_id = NULL,
        expires_at = NULL,
        close_state = 'closed'
    FROM o
    WHERE e.execution_id = ANY(ARRAY(SELECT execution_id FROM o))
        AND e.execution_id = o.execution_id AND e.status = o.expected
        AND e.lease_token = o.lease_token AND e.parent_execution_id = o.s_parent
        AND NOT e.is_finalize AND (SELECT count(*) FROM parents) >= 0
    RETURNING o.*, e.updated_at AS stamped_at
), counted AS (
    UPDATE {{t}} AS p SET children_count = p.children_count + x.n, updated_at = {_NOW}
    FROM (SELECT s_parent, count(*)::int AS n FROM upd GROUP BY s_parent) AS x
    WHERE p.execution_id = ANY(ARRAY(SELECT s_parent FROM upd)) AND p.execution_id = x.s_parent
), ins AS (
    {
    _insert_new(
        "(SELECT s_id AS execution_id, s_task_id AS task_id, s_input AS input, "
        "s_root AS root_execution_id, s_parent AS parent_execution_id, "
        "s_index AS index_in_parent, false AS is_finalize, s_priority AS priority, "
        "s_start_at AS start_at, s_claimed_by AS claimed_by, s_claim_lease AS claim_lease, "
        "s_attributes AS attributes, s_claim_timeout AS claim_timeout FROM upd) AS u",
        sleeping=False,
    )
}
    RETURNING status
)
SELECT ord, stamped_at FROM upd
{_notify_tail(2, [("ready", _exists("ins", "status = 'ready'"))])}
"""

# Inserting a batch without idempotency keys: a plain INSERT of the JSON batch; a batch with
# sleeping executions has two fields more a row (rows.SLEEPING_INSERT_FIELDS).
_INSERT_PLAIN = f"""
WITH ins AS (
    {_insert_new(f"({_json_rows(INSERT_FIELDS)}) AS j", sleeping=False)}
    RETURNING status, created_at
)
SELECT count(*), max(created_at) FROM ins
{_notify_tail(2, [("ready", _exists("ins", "status = 'ready'"))])}
"""
_INSERT_PLAIN_SLEEPING = f"""
WITH ins AS (
    {_insert_new(f"({_json_rows(SLEEPING_INSERT_FIELDS)}) AS j")}
    RETURNING status, created_at
)
SELECT count(*), max(created_at) FROM ins
{_notify_tail(2, [("ready", _exists("ins", "status = 'ready'"))])}
"""

_INSERT_ROOTS = f"""
WITH ins AS (
    {_insert_rows("")}
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING execution_id, status, created_at
)
SELECT execution_id, NULL::text, created_at FROM ins
UNION ALL
SELECT execution_id, idempotency_key, NULL FROM {{t}}
WHERE idempotency_key = ANY(%(keys)s::text[]) AND idempotency_key IS NOT NULL
{_notify_tail(3, [("ready", _exists("ins", "status = 'ready'"))])}
"""

_EXISTING_KEYS = """
SELECT idempotency_key, execution_id FROM {t}
WHERE idempotency_key = ANY(%(keys)s::text[]) AND idempotency_key IS NOT NULL
"""

_CLAIM_PARENTS = f"""
WITH picked AS (
    SELECT execution_id FROM {{t}}
    WHERE {_ADVANCEABLE}
        AND task_id = ANY(%(task_ids)s::text[])
        AND (expires_at IS NULL OR expires_at <= {_NOW})
    ORDER BY execution_id
    LIMIT %(limit)s::bigint
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE {{t}} AS e
    SET lease_token = e.lease_token + 1, expires_at = {_NOW} + %(lease)s::bigint,
        updated_at = {_NOW}
    FROM picked AS p
    WHERE e.execution_id = p.execution_id
    RETURNING {_cols("e")}
)
SELECT {_cols("c")}, (
    SELECT json_agg(json_build_array(k.execution_id, k.task_id, k.status, k.output, k.error)
                    ORDER BY k.index_in_parent)
    FROM {{t}} AS k
    WHERE k.parent_execution_id = c.execution_id AND k.parent_execution_id IS NOT NULL
        AND NOT k.is_finalize
)
FROM claimed AS c ORDER BY c.execution_id
"""

# How cancelling changes an unfinished row (see transitions.cancel_record).
_CANCEL_SET = f"""
    status = 'cancelled', error = {{error}}, updated_at = {_NOW},
    lease_token = {{alias}}.lease_token + 1, expires_at = NULL,
    needs_promise_cancellation = ({{alias}}.status = 'running'),
    executor_id = CASE WHEN {{alias}}.status = 'running' THEN {{alias}}.executor_id END,
    finished_at = {_NOW},
    close_state = {finish_close_state_sql("{alias}", "'cancelled'")}
"""

# The errors of transitions.cancelled_child_error and transitions.completion_failed_error.
_CANCELLED_CHILD_ERROR = (
    "json_build_object('message', format('Parent task %%s (%%s) ended %%s; its unfinished "
    "children were cancelled', {r}.task_id, {r}.execution_id, {r}.status), "
    "'error_type', 'cancelled', 'is_retryable', false)::text"
)
_COMPLETION_FAILED_ERROR = (
    "json_build_object('message', format('on_run_and_children_complete task %%s (%%s) ended "
    "%%s: %%s', {r}.task_id, {r}.execution_id, {r}.status, "
    "COALESCE({r}.error::json ->> 'message', {r}.status)), "
    "'error_type', 'generic', 'is_retryable', false)::text"
)

# Closing a batch, in one statement (see transitions.apply_close):
#
# 1. lock up to ``limit`` rows to close, skipping rows other closers hold (``batch``);
# 2. lock the unfinished parents they decrement and the unfinished children they cancel, all
#    together in id order (``locked``: every closer takes these locks in one global order, so
#    closers cannot deadlock one another over them), before any of them is updated (the
#    ``doomed`` and ``changes`` CTEs wait for ``locked`` through an InitPlan);
# 3. mark the rows closed; apply to each parent the aggregated effect of its closed children
#    (a relative decrement, the count of those that did not complete, and its end when its
#    completion task closed); cancel the unfinished children of rows that did not complete.
#    A parent that is also cancelled here (an unfinished child of another row) is only
#    cancelled: as if that other row closed first, after which closing the parent's children
#    no longer changes it. Rows that finished while this statement waited for their lock are
#    left as they are (each update re-checks ``status NOT IN (finished)`` on the latest row);
# 4. send the wake-ups.
#
# Returns one row per closed execution ('closed') and per execution that finished because of
# the closures: parents ('parent') and cancelled children ('cancelled').
_CLOSE = f"""
WITH batch AS MATERIALIZED (
    SELECT execution_id, parent_execution_id, task_id, status, is_finalize, output, error
    FROM {{t}} WHERE close_state = 'ready'
    ORDER BY execution_id
    LIMIT %(limit)s::bigint
    FOR UPDATE SKIP LOCKED
), parents AS MATERIALIZED (
    SELECT execution_id FROM {{t}}
    WHERE execution_id = ANY(ARRAY(
            SELECT parent_execution_id FROM batch WHERE parent_execution_id IS NOT NULL))
        AND status NOT IN {{finished}}
), kids AS MATERIALIZED (
    SELECT execution_id, parent_execution_id FROM {{t}}
    WHERE parent_execution_id = ANY(ARRAY(
            SELECT execution_id FROM batch WHERE status <> 'completed'))
        AND parent_execution_id IS NOT NULL AND status NOT IN {{finished}}
), locked AS MATERIALIZED (
    SELECT execution_id FROM {{t}}
    WHERE execution_id = ANY(ARRAY(
            SELECT execution_id FROM parents UNION SELECT execution_id FROM kids))
    ORDER BY execution_id
    FOR UPDATE
), doomed AS MATERIALIZED (
    SELECT k.execution_id, {_CANCELLED_CHILD_ERROR.format(r="c")} AS error
    FROM kids AS k JOIN batch AS c ON c.execution_id = k.parent_execution_id
    WHERE (SELECT count(*) FROM locked) >= 0
), changes AS MATERIALIZED (
    SELECT parent_execution_id AS execution_id,
        count(*)::int AS n_closed,
        (count(*) FILTER (WHERE NOT is_finalize AND status <> 'completed'))::int AS n_failed,
        max(status) FILTER (WHERE is_finalize) AS completion_status,
        max(output) FILTER (WHERE is_finalize) AS completion_output,
        max({_COMPLETION_FAILED_ERROR.format(r="batch")})
            FILTER (WHERE is_finalize AND status <> 'completed') AS completion_error
    FROM batch
    WHERE parent_execution_id IS NOT NULL
        AND parent_execution_id NOT IN (SELECT execution_id FROM doomed)
        AND (SELECT count(*) FROM locked) >= 0
    GROUP BY parent_execution_id
), closed AS (
    UPDATE {{t}} AS r SET close_state = 'closed', updated_at = {_NOW}
    FROM batch AS c
    WHERE r.execution_id = c.execution_id
), finished_parents AS (
    UPDATE {{t}} AS p SET
        updated_at = {_NOW},
        unfinished_children = GREATEST(0, p.unfinished_children - x.n_closed),
        failed_children = p.failed_children + {counted_failures_sql("p", "x.n_failed")},
        status = CASE
            WHEN x.completion_status IS NULL THEN p.status
            WHEN x.completion_status = 'completed' THEN 'completed'
            ELSE 'on_run_and_children_complete_failed' END,
        output = CASE
            WHEN x.completion_status = 'completed' THEN x.completion_output ELSE p.output END,
        error = CASE
            WHEN x.completion_status IS NULL THEN p.error ELSE x.completion_error END,
        finished_at = CASE WHEN x.completion_status IS NULL THEN p.finished_at ELSE {_NOW} END,
        close_state = CASE WHEN x.completion_status IS NULL THEN p.close_state ELSE {
    finish_close_state_sql(
        "p", "x.completion_status", "GREATEST(0, p.unfinished_children - x.n_closed)"
    )
} END
    FROM changes AS x
    WHERE p.execution_id = ANY(ARRAY(SELECT execution_id FROM changes))
        AND p.execution_id = x.execution_id AND p.status NOT IN {{finished}}
    RETURNING p.execution_id, p.status, p.close_state, p.unfinished_children,
        p.failed_children, x.completion_status IS NOT NULL AS finished
), cancelled AS (
    UPDATE {{t}} AS c SET {_CANCEL_SET.format(error="d.error", alias="c", now=NOW)}
    FROM doomed AS d
    WHERE c.execution_id = ANY(ARRAY(SELECT execution_id FROM doomed))
        AND c.execution_id = d.execution_id AND c.status NOT IN {{finished}}
    RETURNING c.execution_id, c.needs_promise_cancellation, c.close_state
)
SELECT 'closed', execution_id FROM batch
UNION ALL
SELECT 'parent', execution_id FROM finished_parents WHERE finished
UNION ALL
SELECT 'cancelled', execution_id FROM cancelled
{
    _notify_tail(
        2,
        [
            (
                "close",
                _exists("finished_parents", "close_state = 'ready'")
                + " OR "
                + _exists("cancelled", "close_state = 'ready'"),
            ),
            ("advance", _exists("finished_parents", _ADVANCEABLE)),
            ("cancel", _exists("cancelled", "needs_promise_cancellation")),
        ],
    )
}
"""

CHILD_IDS = (
    "ARRAY(SELECT k.execution_id FROM {t} AS k WHERE k.parent_execution_id = {alias}.execution_id"
    " AND k.parent_execution_id IS NOT NULL AND NOT k.is_finalize ORDER BY k.index_in_parent)"
)
"""The ids of the children of the row ``{alias}`` (its completion task left out), in order."""

_CANCEL_ONE = f"""
WITH changed AS (
    UPDATE {{t}} AS e SET {_CANCEL_SET.format(error="%(error)s::text", alias="e", now=NOW)}
    WHERE e.execution_id = %(id)s::text AND e.status NOT IN {{finished}}
    RETURNING {_cols("e")}, {CHILD_IDS.format(t="{t}", alias="e")} AS child_ids
)
SELECT * FROM changed
{
    _notify_tail(
        len(COLUMNS) + 1,
        [
            ("close", _exists("changed", "close_state = 'ready'")),
            ("cancel", _exists("changed", "needs_promise_cancellation")),
        ],
    )
}
"""

_GET = f"""
SELECT {_cols("e")}, {CHILD_IDS.format(t="{t}", alias="e")}
FROM {{t}} AS e WHERE e.execution_id = ANY({_JSON_IDS})
"""

_FIND_FINISHED = f"""
SELECT execution_id FROM {{t}}
WHERE execution_id = ANY({_JSON_IDS}) AND status IN {{finished}}
"""

_CLAIM_CANCELLATIONS = """
WITH picked AS (
    SELECT execution_id FROM {t}
    WHERE needs_promise_cancellation AND executor_id = %(executor_id)s::text
    ORDER BY execution_id
    LIMIT %(limit)s::bigint
    FOR UPDATE SKIP LOCKED
)
UPDATE {t} AS e SET needs_promise_cancellation = false
FROM picked AS p
WHERE e.execution_id = p.execution_id
RETURNING e.execution_id
"""


def _render(template: str, names: Names, clock: str) -> str:
    now, shift = CLOCKS[clock]
    composed = sql.SQL(template).format(
        t=names.table, finished=sql.SQL(FINISHED_SQL), now=sql.SQL(now), shift=sql.SQL(shift)
    )
    return composed.as_string(None)


@dataclass(frozen=True, slots=True)
class Queries:
    """The SQL text of every statement, for one installation."""

    claim_ready: str
    record_outcomes: str
    finish: str
    succeed: str
    insert_plain: str
    insert_plain_sleeping: str
    insert_roots: str
    existing_keys: str
    claim_parents: str
    close: str
    cancel_one: str
    get: str
    find_finished: str
    claim_cancellations: str
    expire: str
    release: str
    renew: str

    @classmethod
    def render(cls, names: Names, clock: str = "database") -> Queries:
        """Render every statement for ``names`` (identifiers quoted by :mod:`psycopg.sql`),
        on ``clock`` (see ``fragments.CLOCKS``)."""
        return cls(
            claim_ready=_render(CLAIM_READY, names, clock),
            record_outcomes=_render(_OUTCOMES, names, clock),
            finish=_render(_FINISH, names, clock),
            succeed=_render(_SUCCEED, names, clock),
            insert_plain=_render(_INSERT_PLAIN, names, clock),
            insert_plain_sleeping=_render(_INSERT_PLAIN_SLEEPING, names, clock),
            insert_roots=_render(_INSERT_ROOTS, names, clock),
            existing_keys=_render(_EXISTING_KEYS, names, clock),
            claim_parents=_render(_CLAIM_PARENTS, names, clock),
            close=_render(_CLOSE, names, clock),
            cancel_one=_render(_CANCEL_ONE, names, clock),
            get=_render(_GET, names, clock),
            find_finished=_render(_FIND_FINISHED, names, clock),
            claim_cancellations=_render(_CLAIM_CANCELLATIONS, names, clock),
            expire=_render(EXPIRE, names, clock),
            release=_render(RELEASE, names, clock),
            renew=_render(RENEW, names, clock),
        )
