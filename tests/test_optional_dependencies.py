"""pydantic and msgspec are optional: the library never imports them (nor typing_extensions,
which only the type checker reads) unless a schema of theirs is used; typer and rich (the
``cli`` extra) are imported by the command only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import durable_execution

SRC = Path(durable_execution.__file__).resolve().parents[1]


def test_importing_the_library_imports_no_optional_dependency() -> None:
    code = (
        "import sys, durable_execution, durable_execution.executor, durable_execution.shapes\n"
        "print(sorted(m for m in ('pydantic', 'msgspec', 'typing_extensions', 'typer', 'rich',"
        " 'click') "
        "if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"
