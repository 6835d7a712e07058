"""The ``durable-execution`` command (the ``cli`` extra: typer and rich).

One module per subcommand, each adding its command to the application in :mod:`.app`;
:mod:`.common` holds what they share (loading the application, the storage, exit codes).
Nothing here is imported by ``import durable_execution``.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Run the command with ``sys.argv`` (the ``durable-execution`` script's entry point)."""
    try:
        from durable_execution.cli.app import build_app
    except ImportError as exc:  # typer or rich missing
        import sys

        print(
            f"durable-execution: the command needs the cli extra ({exc.name} is missing): "
            "from a checkout of the project, pip install -e '.[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    build_app()()
