"""Every public session is a `SessionBase`: one implementation of what they share, no wrapping."""

from __future__ import annotations

import pydoc
import warnings

import pytest

import dashscope_sync as ds
from dashscope_sync._sessions.base import SessionBase
from dashscope_sync.testing import LocalRealtimeServer
from tests.test_lifecycle_drop import OPENERS

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

SESSIONS = [ds.RealtimeSession, ds.SpeechSession, ds.TranscriptionSession]

#: What every session takes from `SessionBase` as it is.
SHARED = [
    "id",
    "info",
    "model",
    "closed",
    "close_code",
    "close_reason",
    "dropped_events",
    "dropped_from_buffer",
    "dropped_for_handlers",
    "on",
    "recv",
    "events",
    "__iter__",
    "wait_for",
    "close",
    "__enter__",
    "__exit__",
    "__del__",
]


@pytest.mark.parametrize("cls", SESSIONS, ids=lambda cls: cls.__name__)
def test_every_session_inherits_one_implementation(cls: type) -> None:
    """The shared methods and properties are SessionBase's own, not copies or forwarders."""
    assert issubclass(cls, SessionBase)
    redefined = [name for name in SHARED if name in vars(cls)]
    assert redefined == []


@pytest.mark.parametrize("cls", SESSIONS, ids=lambda cls: cls.__name__)
def test_help_shows_every_shared_method_on_each_session(cls: type) -> None:
    """help() on each public session shows each shared method with its docstring."""
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    for name in ("on(", "recv(", "events(", "wait_for(", "close(", "__enter__(", "__exit__("):
        assert name in text, name
    for name in ("dropped_events", "close_code", "close_reason", "closed"):
        assert f"\n |  {name}\n" in text, name
    assert "Call ``handler(event)`` for every event of a type" in text
    assert "Consume events up to and including the first of a type" in text


@pytest.mark.parametrize("kind", list(OPENERS))
def test_each_session_receives_and_closes_the_same_way(
    server: LocalRealtimeServer, client: ds.Client, kind: str
) -> None:
    """No session wraps another; each pulls (wait_for, iteration, recv), counts drops,
    and closes with the same code, as the base does."""
    with OPENERS[kind](client) as session:
        assert type(session).__name__ == kind
        assert not any(isinstance(value, SessionBase) for value in vars(session).values())
        created = session.wait_for(ds.SessionCreated, timeout=10)
        assert created.session.id == session.id
        session.on(ds.SessionUpdated, lambda event: None)
        assert (session.dropped_events, session.dropped_from_buffer) == (0, 0)
        assert session.dropped_for_handlers == 0
        assert session.close_code is None and not session.closed
        iterator = iter(session)
    assert session.closed
    assert session.close_code == 1000
    # Events already buffered stay readable after close; then the iteration ends.
    rest = list(iterator)
    assert all(isinstance(event, ds.ServerEvent) for event in rest)
    assert session.recv(timeout=0) is None


@pytest.mark.parametrize("kind", list(OPENERS))
def test_unknown_event_type_warning_points_at_the_callers_line(
    server: LocalRealtimeServer, client: ds.Client, kind: str
) -> None:
    """A misspelt event type warns at the caller's line on every session (a session that
    forwarded to another one pointed the warning at the library)."""
    with OPENERS[kind](client) as session:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session.on("respnse.done", lambda event: None)
        (warning,) = [w for w in caught if issubclass(w.category, UserWarning)]
        assert warning.filename == __file__
