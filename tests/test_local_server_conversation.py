"""The local server's view of the conversation: items in order, previous_item_id, deletes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

#: The family whose docs list assistant items, retrieve and delete.
MODEL = ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS


def text_item(item_id: str, text: str, role: str = "user") -> dict[str, object]:
    kind = "input_text" if role == "user" else "text"
    return {
        "id": item_id,
        "type": "message",
        "role": role,
        "content": [{"type": kind, "text": text}],
    }


@pytest.fixture
def manual(client: ds.Client) -> Iterator[ds.RealtimeSession]:
    with client.realtime.connect(model=MODEL) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        yield session


def test_replies_join_the_conversation_with_what_was_sent(
    server: LocalRealtimeServer, manual: ds.RealtimeSession
) -> None:
    """A reply's item follows the user's, holding the text the server sent."""
    manual.create_item(text_item("item_u1", "Hello"))
    result = manual.create_response().wait(timeout=30)
    items = server.connections[0].conversation
    assert items[0]["id"] == "item_u1"
    (reply,) = items[1:]
    assert reply["role"] == "assistant" and reply["content"][0]["transcript"] == result.text


def test_previous_item_id_places_the_item_after_that_one(
    server: LocalRealtimeServer, manual: ds.RealtimeSession
) -> None:
    """conversation.item.create with previous_item_id inserts right after it, echoing it."""
    manual.create_item(text_item("item_a", "one"))
    manual.create_item(text_item("item_c", "three"))
    manual.create_item(text_item("item_b", "two", role="assistant"), previous_item_id="item_a")
    echo = manual.wait_for(ds.ConversationItemCreated, timeout=10)
    while echo.item.id != "item_b":
        echo = manual.wait_for(ds.ConversationItemCreated, timeout=10)
    assert (echo.item.id, echo.previous_item_id) == ("item_b", "item_a")
    items = server.connections[0].conversation
    assert [item["id"] for item in items] == ["item_a", "item_b", "item_c"]
    manual.delete_item("item_b", timeout=10)
    assert [item["id"] for item in server.connections[0].conversation] == ["item_a", "item_c"]


def test_an_unknown_previous_item_is_refused(manual: ds.RealtimeSession) -> None:
    """previous_item_id naming no item is an error naming the parameter."""
    manual.create_item(text_item("item_x", "x"), previous_item_id="item_missing")
    error = manual.wait_for(ds.ErrorEvent, timeout=10)
    assert error.error.param == "previous_item_id"
