"""``python -m durable_execution``: the ``durable-execution`` command."""

from durable_execution.cli import main

if __name__ == "__main__":
    main()
