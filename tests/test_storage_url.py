"""storage_from_url accepts a URL with spaces around it (pasted, read from a file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable_execution.storage import storage_from_url
from durable_execution.storage.memory import InMemoryStorage
from durable_execution.storage.sqlite import SQLiteStorage
from durable_execution.storage.url import STORAGE_URL_ENV, default_storage


@pytest.mark.parametrize("around", [" ", "\n", " \t", "\r\n "])
def test_spaces_around_a_url_are_ignored(tmp_path: Path, around: str) -> None:
    storage = storage_from_url(f"{around}sqlite:///{tmp_path}/app.db{around}")
    assert isinstance(storage, SQLiteStorage)
    assert storage.path == f"{tmp_path}/app.db"
    assert isinstance(storage_from_url(f"{around}memory://{around}"), InMemoryStorage)


def test_the_environment_variable_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORAGE_URL_ENV, f"  sqlite:///{tmp_path}/env.db\n")
    storage = default_storage()
    assert isinstance(storage, SQLiteStorage)
    assert storage.path == f"{tmp_path}/env.db"


def test_spaces_inside_are_still_an_error() -> None:
    with pytest.raises(ValueError, match="Unknown storage URL scheme"):
        storage_from_url("sq lite:///x.db")
