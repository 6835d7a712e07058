"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_pytest_plugin import plugin_args

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]


def _quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\s+```python\n(.*?)```", readme, re.S)
    assert block is not None
    return block.group(1)


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(_quickstart())
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("completed {")
    assert "'title': 'File Title'" in result.stdout
    assert (tmp_path / "durable_execution.db").exists()


def test_readme_quickstart_is_the_one_mypy_checks() -> None:
    """``make typecheck`` checks a copy of the quickstart (tests/typing is not run)."""
    copy = (ROOT / "tests" / "typing" / "readme_quickstart.py").read_text()
    header, _, code = copy.partition("\n")
    assert header.startswith("# The README's quickstart")
    assert code == _quickstart(), "copy the README's quickstart to tests/typing/"


def test_readme_testing_example_runs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"## Testing your tasks\n(.*?)\n## ", readme, re.S)
    assert section is not None
    files = re.findall(r"```(?:python|toml)\n# (\S+)\n(.*?)```", section.group(1), re.S)
    assert [name for name, _ in files] == ["myapp.py", "test_myapp.py", "pyproject.toml"]
    for name, text in files:
        (pytester.path / name).write_text(text)
    monkeypatch.delenv("DURABLE_EXECUTION_STORAGE_URL", raising=False)
    result = pytester.runpytest_subprocess(*plugin_args(), "-W", "error")
    result.assert_outcomes(passed=2)
    assert not (pytester.path / "durable_execution.db").exists()  # myapp's own storage


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("Retry policies", "completed 1.08 2\n"),
        ("Durable timers", "welcomed ada@example.com / reminded ada@example.com\n"),
        (
            "Looping tasks",
            "{'is_success': True, 'output': 'https://reports.example.com/r-42.pdf'} 3\n",
        ),
        (
            "Inspecting executions",
            "charge declined: 250\norder completed\n  charge completed\n  charge failed\n"
            "charge completed 1\ncharge failed 1\norder completed 1\n",
        ),
    ],
)
def test_readme_section_example_runs(tmp_path: Path, section: str, expected: str) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(rf"## {section}\n.*?```python\n(.*?)```", readme, re.S)
    assert block is not None
    script = tmp_path / "example.py"
    script.write_text(block.group(1))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_readme_settled_children_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Settled children\n.*?```python\n(.*?)```", readme, re.S)
    assert block is not None
    script = tmp_path / "settled.py"
    script.write_text(block.group(1))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = "{'notify:0': 'completed', 'notify:1': 'SMS gateway down', 'notify:2': 'completed'}"
    assert result.stdout == f"completed {expected}\n"


def test_readme_sleeping_task_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Sleeping tasks[^\n]*\n.*?```python\n(.*?)```", readme, re.S)
    assert block is not None
    script = tmp_path / "sleeping.py"
    script.write_text(block.group(1))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "{'status': 'completed'}",
        "completed {'approved_by': 'ada'}",
    ]
