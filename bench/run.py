"""`make bench`: every workload, ours and the peers', in one run; a table, JSON and a chart.

    python bench/run.py [--only ours|peers|all] [--repeat N] [--skip-memory]
                        [--scale-rows 1000000[,10000000] | --scale-rows 0]

Each measurement is a fresh process (`bench/engine.py`, `bench/limit.py`, `bench/multi.py`,
`bench/crash.py`, `bench/peers/<peer>.py`) printing one JSON line. With ``--repeat N`` every
throughput or latency figure is measured N times and the median kept (the machine is noisy).
The N runs are made in rounds: each round runs every measurement once, ours and the peers',
so that the runs whose ratios the table gives are spread over the same stretch of time and a
machine that slows down midway weighs on both sides alike (measuring all of ours first, then
all of the peers', put up to half an hour between the two sides of a ratio).
The scale runs (``bench/scale.py``: W1, W2 and reads with ``--scale-rows`` finished executions
already in the table, against an empty store, on SQLite and on PostgreSQL with autovacuum as
the server has it and forced on) are made once, after the rounds; they alternate their own
rounds inside. 1,000,000 rows by default (about ten minutes in all); ``--scale-rows
1000000,10000000`` adds the ten-million-row point (the better part of an hour, and ~20 GB of
disk for a while), ``--scale-rows 0`` leaves them out.
Results go to ``bench/results/results.json`` (every raw line) and ``bench/results/chart.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PEERS = ("pgqueuer", "procrastinate", "absurd", "dbos")
WORKLOADS = ("w1_batch", "w1_single", "w2", "w3", "w4")  # ours and the peers'
BACKENDS = ("memory", "sqlite", "postgres")
SCALE_TIMEOUT_S = 4 * 3_600  # ten million rows filled and measured
# The patterns users write (ours only), each judged against W1 batch of the same run, and the
# reads of finished executions (R1) with the figures the table gives of them.
USER_PATH = ("w1_wait_all", "w1_wait_each", "w1_gather", "w1_enqueue_gather")
USER_PATH_TARGET = 1.3  # each pattern within 1.3x of W1 batch (issue 16)
READS = {
    "get, warm": "get",
    "wait, warm": "wait",
    "get, cold": "cold_get",
    "wait, cold": "cold_wait",
}
# The figure each workload is judged by, and whether higher is better.
METRIC = {
    "w1_batch": ("tasks_per_s", True),
    "w1_single": ("tasks_per_s", True),
    "w2": ("p50_ms", False),
    "w3": ("seconds", False),
    "w4": ("ms_per_step", False),
    **{pattern: ("tasks_per_s", True) for pattern in USER_PATH},
    "r1": ("wait_p50_us", False),
    "w6": ("wake_to_parent_p50_ms", False),
}
UNIT = {
    "tasks_per_s": "tasks/s",
    "p50_ms": "ms p50",
    "seconds": "s",
    "ms_per_step": "ms/step",
    "wait_p50_us": "µs p50",
}


def run_json(args: list[str], timeout: float = 1_800) -> dict[str, Any]:
    """Run a benchmark script; its last stdout line is the JSON result."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}", "args": args}
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose headline figure is the median of the runs (all runs kept alongside)."""
    good = [r for r in runs if "error" not in r and "skipped" not in r]
    if not good:
        return runs[-1]
    metric, _ = METRIC.get(good[0].get("workload", ""), ("tasks_per_s", True))
    if metric not in good[0]:
        return good[0]
    ordered = sorted(good, key=lambda r: r[metric])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["runs"] = [r.get(metric) for r in good]
    return chosen


def measure_in_rounds(plan: list[tuple[list[str], bool]], repeat: int) -> list[dict[str, Any]]:
    """Run every measurement of ``plan`` (its arguments, and whether it is repeated) once per
    round, ``repeat`` rounds; each measurement's result is the median of its runs."""
    runs: list[list[dict[str, Any]]] = [[] for _ in plan]
    for round_ in range(1, repeat + 1):
        print(f"round {round_} of {repeat}:", flush=True)
        for (args, repeated), done in zip(plan, runs, strict=True):
            if done and not repeated:
                continue
            done.append(run_json(args, SCALE_TIMEOUT_S if "scale" in args[0] else 1_800))
            print(f"  {' '.join(args):60s} -> {summary(done[-1])}", flush=True)
    return [median_of(done) for done in runs]


def summary(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"]
    if "skipped" in result:
        return "skipped: " + result["skipped"]
    keys = (
        "tasks_per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "seconds",
        "ms_per_step",
        "recovery_s",
        "lost",
        "completed_twice",
        "growth_mb",
        "wakeups_per_s",
        "wake_to_parent_p50_ms",
        *(f"{name}_p50_us" for name in READS.values()),
    )
    return ", ".join(f"{k}={result[k]}" for k in keys if k in result)


def command_runs() -> Iterable[tuple[list[str], bool]]:
    """W1 and W7 through the worker command, with one process and with two."""
    for backend in ("sqlite", "postgres"):
        for workload in ("w1", "w7"):
            for processes in ("1", "2"):
                args = [backend, "--workload", workload, "--processes", processes]
                yield ["bench/processes.py", *args], True


def ours(skip_memory: bool) -> Iterable[tuple[list[str], bool]]:
    """Our measurements: their arguments, and whether they are repeated (the crash and memory
    runs, long and not noisy, run once)."""
    for backend in BACKENDS:  # the user's path right after W1 batch, to compare with it
        for workload in ("w1_batch", *USER_PATH, "r1", *WORKLOADS[1:]):
            yield ["bench/engine.py", backend, workload], True
    for backend in ("sqlite", "postgres"):
        yield ["bench/limit.py", backend], True
        yield ["bench/limit.py", backend, "--through-storage"], True
    yield ["bench/multi.py", "postgres", "--workers", "2"], True
    yield from command_runs()
    for backend in ("sqlite", "postgres"):
        yield ["bench/crash.py", backend], False
    for backend in ("sqlite", "postgres"):
        yield ["bench/engine.py", backend, "w6"], True
    if not skip_memory:
        for backend in ("sqlite", "postgres"):
            yield ["bench/engine.py", backend, "memory"], False
            yield ["bench/engine.py", backend, "sleeping_memory"], False


def scale_runs(rows: str) -> Iterable[tuple[list[str], bool]]:
    """The scale runs (not repeated: each alternates its own rounds)."""
    if rows.strip() in ("", "0"):
        return
    sizes = ["--sizes", rows]
    yield ["bench/scale.py", "sqlite", *sizes, "--rounds", "5"], False
    yield (
        ["bench/scale.py", "postgres", *sizes, "--rounds", "5", "--autovacuum", "server,on"],
        False,
    )


def scale_lines(results: list[dict[str, Any]]) -> list[str]:
    """Per backend, size and autovacuum: the filled store's figures and their ratio to the
    empty store's of the same rounds (W2 and reads: a ratio above 1 is slower)."""
    lines = []
    for r in results:
        if r.get("workload") != "scale" or "error" in r:
            continue
        for f in r["points"]:
            where = (
                r["backend"]
                if f["autovacuum"] is None
                else (f"{r['backend']}, autovacuum {f['autovacuum']}")
            )
            w1, w2, get = f["w1_tasks_per_s"], f["w2_p50_ms"], f["get_recent_p50_us"]
            size = f.get("file_mb", f.get("mb", {}).get("de_executions"))
            lines.append(
                f"{where}, {f['rows']:,} rows: W1 {w1['filled']} tasks/s ({w1.get('ratio')}x "
                f"empty), W2 p50 {w2['filled']} ms ({w2.get('ratio')}x), get p50 {get['filled']} "
                f"µs ({get.get('ratio')}x), history get {f['get_history_p50_us']} µs; "
                f"table {size} MB"
            )
    return lines


def peers() -> Iterable[tuple[list[str], bool]]:
    for peer in PEERS:
        for mode in ("default", "fast"):
            for workload in WORKLOADS:
                yield [f"bench/peers/{peer}.py", workload, "--mode", mode], True


def command_lines(results: list[dict[str, Any]]) -> list[str]:
    """W1 and W7 through ``durable-execution worker``: one process, two, and the ratio."""
    lines = []
    for backend in ("sqlite", "postgres"):
        for workload in ("w1", "w7"):
            one = find(results, backend=backend, workload=f"{workload}_command_1procs")
            two = find(results, backend=backend, workload=f"{workload}_command_2procs")
            if one and two:
                lines.append(
                    f"{backend} {workload.upper()} via the worker command: "
                    f"{one['tasks_per_s']} tasks/s in one process, {two['tasks_per_s']} in two "
                    f"({two['tasks_per_s'] / one['tasks_per_s']:.2f}x)"
                )
    return lines


def find(results: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for result in results:
        if all(result.get(k) == v for k, v in match.items()) and "error" not in result:
            return result
    return None


def best_peer(results: list[dict[str, Any]], workload: str) -> tuple[str, float] | None:
    metric, higher = METRIC[workload]
    best: tuple[str, float] | None = None
    for result in results:
        if result.get("workload") != workload or result.get("engine") in (
            "durable_execution",
            "limit",
            "storage",
        ):
            continue
        value = result.get(metric)
        if value is None:
            continue
        label = f"{result['engine']} ({result.get('mode', '')})"
        if best is None or (value > best[1] if higher else value < best[1]):
            best = (label, float(value))
    return best


def table(results: list[dict[str, Any]]) -> str:
    """Our figures per backend, the best peer and the ratio (>1: we are better)."""
    lines = [
        f"{'workload':<12} {'unit':<8} {'memory':>9} {'sqlite':>9} {'postgres':>9}  "
        f"{'best peer (postgres)':<26} {'peer':>9} {'ratio':>7}",
    ]
    for workload in WORKLOADS:
        metric, higher = METRIC[workload]
        cells = []
        for backend in ("memory", "sqlite", "postgres"):
            ours_ = find(results, engine="durable_execution", backend=backend, workload=workload)
            cells.append(f"{ours_[metric]:>9}" if ours_ and metric in ours_ else f"{'-':>9}")
        peer = best_peer(results, workload)
        pg = find(results, engine="durable_execution", backend="postgres", workload=workload)
        ratio = "-"
        if peer and pg and metric in pg and peer[1] and pg[metric]:
            value = pg[metric] / peer[1] if higher else peer[1] / pg[metric]
            ratio = f"{value:.2f}x"
        peer_cells = f"{peer[0]:<26} {peer[1]:>9}" if peer else f"{'-':<26} {'-':>9}"
        lines.append(f"{workload:<12} {UNIT[metric]:<8} {' '.join(cells)}  {peer_cells} {ratio:>7}")
    return "\n".join(lines)


def user_path_table(results: list[dict[str, Any]]) -> str:
    """Each user pattern's tasks/s per backend, and how many times W1 batch of the same run
    was faster (the target: at most 1.3x); then R1, the reads of finished executions."""
    lines = [
        "the user's path: tasks/s, then W1 batch / pattern and w1_wait_all / pattern",
        f"(target <= {USER_PATH_TARGET}x; W1 batch does not read the records, w1_wait_all does:",
        "enqueue_tasks + one wait_and_get_executions)",
        f"{'pattern':<20} " + " ".join(f"{backend:>24}" for backend in BACKENDS),
    ]
    for workload in ("w1_batch", *USER_PATH):
        cells = []
        for backend in BACKENDS:
            r = find(results, engine="durable_execution", backend=backend, workload=workload)
            cell = "-"
            if r and "tasks_per_s" in r:
                cell = str(r["tasks_per_s"])
                for reference in ("w1_batch", "w1_wait_all"):
                    ref = find(
                        results, engine="durable_execution", backend=backend, workload=reference
                    )
                    if workload not in (reference, "w1_batch") and ref and r["tasks_per_s"]:
                        cell += f" {ref['tasks_per_s'] / r['tasks_per_s']:.2f}x"
            cells.append(f"{cell:>24}")
        lines.append(f"{workload:<20} " + " ".join(cells))
    lines += [
        "",
        "R1, reads of finished executions, µs p50 / p99; warm: from the executor that ran them,",
        "cold: from a second executor on the same database that did not",
        f"{'read':<20} " + " ".join(f"{backend:>17}" for backend in BACKENDS),
    ]
    for label, name in READS.items():
        cells = []
        for backend in BACKENDS:
            r = find(results, engine="durable_execution", backend=backend, workload="r1")
            cell = "-"
            if r and f"{name}_p50_us" in r:
                cell = f"{r[f'{name}_p50_us']} / {r[f'{name}_p99_us']}"
            cells.append(f"{cell:>17}")
        lines.append(f"r1 {label:<17} " + " ".join(cells))
    return "\n".join(lines)


def extras(results: list[dict[str, Any]]) -> str:
    lines = []
    for backend in ("sqlite", "postgres"):
        limit = find(results, engine="limit", backend=backend)
        w1 = find(results, engine="durable_execution", backend=backend, workload="w1_batch")
        if limit and w1:
            share = w1["tasks_per_s"] / limit["tasks_per_s"]
            lines.append(
                f"{backend} ceiling (bench/limit.py): {limit['tasks_per_s']} tasks/s; "
                f"W1 batch = {share:.0%} of it"
            )
        statements = find(results, engine="storage", backend=backend)
        if limit and w1 and statements:
            lines.append(
                f"{backend} our storage's statements alone (--through-storage): "
                f"{statements['tasks_per_s']} tasks/s = "
                f"{statements['tasks_per_s'] / limit['tasks_per_s']:.0%} of the ceiling; "
                f"W1 batch = {w1['tasks_per_s'] / statements['tasks_per_s']:.0%} of it"
            )
    multi = find(results, workload="w1_batch_2procs")
    if multi:
        lines.append(f"postgres W1 batch, 2 executor processes: {multi['tasks_per_s']} tasks/s")
    lines += command_lines(results)
    lines += scale_lines(results)
    for backend in ("sqlite", "postgres"):
        crash = find(results, workload="w5", backend=backend)
        if crash:
            lines.append(
                f"{backend} W5 crash recovery: {crash['recovery_s']} s (bound {crash['bound_s']} s)"
                f", lost {crash['lost']}, completed twice {crash['completed_twice']}"
            )
        memory = find(results, workload="memory", backend=backend)
        if memory:
            lines.append(f"{backend} memory: {summary(memory)}")
        w6 = find(results, workload="w6", backend=backend)
        if w6 and "wakeups_per_s" in w6:
            lines.append(
                f"{backend} W6, {w6['sleeping']} sleeping executions woken from another "
                f"process: {w6['wakeups_per_s']} wake-ups/s, wake-up -> parent completed "
                f"p50 {w6['wake_to_parent_p50_ms']} ms (p99 {w6['wake_to_parent_p99_ms']} ms)"
            )
        sleeping = find(results, workload="sleeping_memory", backend=backend)
        if sleeping and "growth_mb" in sleeping:
            lines.append(
                f"{backend} executor RSS with {sleeping['sleeping']} sleeping executions in "
                f"storage: {sleeping['rss_mb_with']} MiB against {sleeping['rss_mb_without']} "
                f"MiB without (+{sleeping['growth_mb']} MiB; noise {sleeping['noise_mb']} MiB)"
            )
    return "\n".join(lines)


def chart(results: list[dict[str, Any]], path: Path) -> None:
    """Top row: one panel per workload, our backends and each peer's best mode. Bottom row:
    the user's path against W1 batch, and R1, per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4 * len(WORKLOADS), 9))
    grid = fig.add_gridspec(2, len(WORKLOADS))
    for column, workload in enumerate(WORKLOADS):
        workload_panel(fig.add_subplot(grid[0, column]), results, workload)
    split = len(WORKLOADS) // 2 + 1
    series = {workload: ("tasks_per_s", workload) for workload in ("w1_batch", *USER_PATH)}
    grouped_panel(fig.add_subplot(grid[1, :split]), results, series, "the user's path (tasks/s)")
    reads = {label: (f"{name}_p50_us", "r1") for label, name in READS.items()}
    grouped_panel(fig.add_subplot(grid[1, split:]), results, reads, "R1 reads (µs p50)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def workload_panel(ax: Any, results: list[dict[str, Any]], workload: str) -> None:
    metric, higher = METRIC[workload]
    labels: list[str] = []
    values: list[float] = []
    colors: list[str] = []
    for backend in BACKENDS:
        r = find(results, engine="durable_execution", backend=backend, workload=workload)
        if r and metric in r:
            labels.append(f"ours\n{backend}")
            values.append(float(r[metric]))
            colors.append("tab:blue")
    for peer in PEERS:
        candidates = [
            r
            for r in results
            if r.get("engine") == peer and r.get("workload") == workload and metric in r
        ]
        if candidates:
            pick = max if higher else min
            values.append(float(pick(r[metric] for r in candidates)))
            labels.append(peer)
            colors.append("tab:gray")
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_title(f"{workload} ({UNIT[metric]}, {'higher' if higher else 'lower'} is better)")
    if not higher:
        ax.set_yscale("log")


def grouped_panel(
    ax: Any, results: list[dict[str, Any]], series: dict[str, tuple[str, str]], title: str
) -> None:
    """Bars grouped by backend, one per series (its label: the figure and the workload)."""
    width = 0.8 / len(series)
    for index, (label, (metric, workload)) in enumerate(series.items()):
        values = []
        for backend in BACKENDS:
            r = find(results, engine="durable_execution", backend=backend, workload=workload)
            values.append(float(r[metric]) if r and metric in r else 0.0)
        offsets = [b + (index - (len(series) - 1) / 2) * width for b in range(len(BACKENDS))]
        ax.bar(offsets, values, width, label=label)
    ax.set_xticks(range(len(BACKENDS)), BACKENDS)
    ax.set_title(title)
    ax.legend(fontsize=8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["ours", "peers", "all"], default="all")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--scale-rows", default="1000000")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    plan: list[tuple[list[str], bool]] = []
    if args.only in ("ours", "all"):
        plan += ours(args.skip_memory)
    if args.only in ("peers", "all"):
        plan += peers()
    if args.only in ("ours", "all"):
        plan += scale_runs(args.scale_rows)
    started = time.time()
    results = measure_in_rounds(plan, args.repeat)
    report = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
        "results": results,
    }
    (RESULTS / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(table(results))
    print()
    print(user_path_table(results))
    print()
    print(extras(results))
    try:
        chart(results, RESULTS / "chart.png")
        print(f"\nchart: {RESULTS / 'chart.png'}")
    except ImportError:
        print("\n(no chart: matplotlib is in the bench extra)")
    print(f"raw results: {RESULTS / 'results.json'}")


if __name__ == "__main__":
    main()
    sys.exit(0)
