"""Shared fixtures: a local realtime server per test, and a thread-leak check."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


def _library_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dashscope_sync-")]


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Fail a test that leaves a session thread running after it ends."""
    before = set(_library_threads())
    yield
    leaked = [t for t in _library_threads() if t not in before]
    for thread in leaked:
        thread.join(5.0)  # a thread that is just finishing gets its moment
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads left running: {still}"


@pytest.fixture
def server() -> Iterator[LocalRealtimeServer]:
    with LocalRealtimeServer() as srv:
        yield srv


@pytest.fixture
def client(server: LocalRealtimeServer) -> ds.Client:
    return ds.Client(server.api_key, base_url=server.url)


@pytest.fixture
def session(client: ds.Client) -> Iterator[ds.RealtimeSession]:
    with client.realtime.connect(model=MODEL) as sess:
        yield sess
