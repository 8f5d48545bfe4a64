"""Type-level checks of the public API, run by mypy (tests/test_quality.py), never executed.

Each ``assert_type`` pins what a type checker infers, so an overload that
loosens (a handler typed as the base event, a result typed as Any) fails CI.
"""

from __future__ import annotations

from typing_extensions import assert_type  # typing has it from 3.11 only

import dashscope_sync as ds


def check(session: ds.RealtimeSession) -> None:
    def on_audio(event: ds.ResponseAudioDelta) -> None:
        assert_type(event.delta, bytes)

    assert_type(session.on(ds.ResponseAudioDelta, on_audio), ds.HandlerHandle)
    assert_type(session.on("response.text.delta", print), ds.HandlerHandle)

    @session.on(ds.ResponseTextDelta)
    def on_text(event: ds.ResponseTextDelta) -> None:
        assert_type(event.delta, str)

    assert_type(session.wait_for(ds.ResponseDone), ds.ResponseDone)
    assert_type(session.wait_for("response.done"), ds.ServerEvent)
    assert_type(session.recv(), ds.ServerEvent | None)
    assert_type(session.update_session(ds.SessionUpdate(voice="Cherry")), ds.SessionInfo)
    assert_type(session.update_session(ds.SessionUpdate(), wait=False), None)
    response = session.create_response()
    assert_type(response, ds.Response)
    assert_type(response.wait(), ds.ResponseResult)
    assert_type(session.respond(b"\x00\x00"), ds.ResponseResult)
    assert_type(ds.Client("k").tokens.create(), ds.TemporaryKey)
    assert_type(session.family, ds.ModelFamily)
    assert_type(session.retrieve_item("item_1"), ds.ConversationItem)
    assert_type(session.delete_item("item_1"), None)
    assert_type(session.send_function_output("call_1", {"ok": True}), str)
