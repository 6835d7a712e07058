"""Third-party storages reached by URL through the ``durable_execution.storages`` entry points.

Each test installs, in its own temporary directory put on ``sys.path``, a small distribution
(a module and its ``*.dist-info``) that ``importlib.metadata`` finds as it would a real one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from durable_execution import DurableExecutor, DurableTaskExecutionStatus
from durable_execution.storage import storage_from_url
from durable_execution.storage.memory import InMemoryStorage

PLUGIN_SOURCE = '''
from durable_execution.storage.memory import InMemoryStorage


class URLStorage(InMemoryStorage):
    """An in-memory storage that remembers the URL it was made from."""

    def __init__(self, url):
        super().__init__()
        self.url = url


def from_url(url):
    return URLStorage(url)


def not_a_storage(url):
    return {"url": url}


def storage_class(url):
    return URLStorage


def refuses(url):
    raise ValueError(f"malformed URL {url}")
'''


def install_plugin(root: Path, module: str, entry_points: dict[str, str], name: str) -> None:
    """Write ``module`` (from :data:`PLUGIN_SOURCE`) and a distribution ``name`` registering
    ``entry_points`` (scheme → attribute of the module) in ``root``."""
    (root / f"{module}.py").write_text(PLUGIN_SOURCE)
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"{scheme} = {module}:{attribute}" for scheme, attribute in entry_points.items()]
    (info / "entry_points.txt").write_text(
        "[durable_execution.storages]\n" + "\n".join(lines) + "\n"
    )


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A distribution on ``sys.path`` registering a few schemes; the name of its module."""
    module = f"de_test_plugin_{uuid.uuid4().hex[:8]}"
    schemes = {
        "myscheme": "from_url",
        "notastorage": "not_a_storage",
        "aclass": "storage_class",
        "refuses": "refuses",
        "missing": "no_such_factory",
        "memory": "from_url",  # a built-in scheme: never used
    }
    install_plugin(tmp_path, module, schemes, "de-test-plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    return module


def stored_module(name: str) -> ModuleType:
    return sys.modules[name]


def test_a_registered_scheme_gets_the_plugins_storage(plugin: str) -> None:
    storage = storage_from_url("myscheme://somewhere/db?x=1")
    assert type(storage) is stored_module(plugin).URLStorage
    assert storage.url == "myscheme://somewhere/db?x=1"  # type: ignore[attr-defined]
    assert type(storage_from_url("MyScheme://other")) is stored_module(plugin).URLStorage


async def test_the_environment_variable_reaches_a_registered_scheme(
    plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLE_EXECUTION_STORAGE_URL", "myscheme://from-the-environment")
    executor = DurableExecutor(background_process_interval_ms=20)
    assert type(executor.storage) is stored_module(plugin).URLStorage
    assert executor.storage.url == "myscheme://from-the-environment"  # type: ignore[attr-defined]
    task = executor.task(id="double", timeout_ms=5_000, run=lambda ctx, n: 2 * n)
    async with executor:
        handle = await executor.enqueue_task(task, 21)
        execution = await handle.wait_and_get_execution(timeout=10)
    assert (execution.status, execution.output) == (DurableTaskExecutionStatus.COMPLETED, 42)


def test_built_in_schemes_cannot_be_registered_over(plugin: str) -> None:
    assert type(storage_from_url("memory://")) is InMemoryStorage


def test_a_factory_returning_something_else_is_refused(
    plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLE_EXECUTION_STORAGE_URL", "notastorage://x")
    with pytest.raises(TypeError, match="which is not a DurableStorage"):
        DurableExecutor()
    for scheme, got in (("notastorage", "{'url'"), ("aclass", "<class")):
        with pytest.raises(TypeError) as info:
            storage_from_url(f"{scheme}://x")
        message = str(info.value)
        assert f"{plugin}:" in message
        assert "de-test-plugin" in message
        assert got in message
        assert "which is not a DurableStorage" in message


def test_a_failing_factory_says_which_one_failed(plugin: str) -> None:
    with pytest.raises(ValueError, match="malformed URL refuses://x") as refused:
        storage_from_url("refuses://x")
    assert any(f"{plugin}:refuses" in note for note in refused.value.__notes__)
    with pytest.raises(AttributeError) as missing:
        storage_from_url("missing://x")
    assert any(f"{plugin}:no_such_factory" in note for note in missing.value.__notes__)


def test_an_unknown_scheme_says_how_to_register_one(plugin: str) -> None:
    with pytest.raises(ValueError, match="Unknown storage URL scheme 'nosuch'") as info:
        storage_from_url("nosuch://x")
    assert "durable_execution.storages" in str(info.value)
    assert "sqlite, memory or postgresql" in str(info.value)


def test_a_scheme_registered_twice_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in (1, 2):
        root = tmp_path / f"site{n}"
        root.mkdir()
        install_plugin(
            root, f"de_twice_{n}_{uuid.uuid4().hex[:8]}", {"twice": "from_url"}, f"twice-{n}"
        )
        monkeypatch.syspath_prepend(str(root))
    with pytest.raises(ValueError, match="'twice' is registered more than once") as info:
        storage_from_url("twice://x")
    assert "twice-1" in str(info.value)
    assert "twice-2" in str(info.value)


def test_entry_points_are_read_only_for_other_schemes() -> None:
    """``import durable_execution`` and the built-in schemes do not load importlib.metadata."""
    script = textwrap.dedent(
        """
        import sys
        before = "importlib.metadata" in sys.modules
        import durable_execution
        from durable_execution.storage import storage_from_url
        storage_from_url("memory://")
        print(before, "importlib.metadata" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    before, after = result.stdout.split()
    if before == "True":
        pytest.skip("this interpreter imports importlib.metadata at start-up")
    assert after == "False"
