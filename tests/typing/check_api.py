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


def check_tools(session: ds.RealtimeSession) -> None:
    @session.tool
    def weather(city: str) -> str:
        return city

    assert_type(weather("Paris"), str)  # the function, unchanged

    @session.tool(name="clock", timeout=None)
    def clock() -> int:
        return 0

    assert_type(clock(), int)
    assert_type(session.tool(weather, name="w2")("Paris"), str)
    assert_type(session.tools["weather"], ds.Tool)

    def on_call(call: ds.ToolCall) -> None:
        assert_type(call.error, str | None)

    assert_type(session.on(ds.ToolCall, on_call), ds.HandlerHandle)
    result = session.respond(text="hi")
    assert_type(result.tool_calls, tuple[ds.ToolCall, ...])
    assert_type(result.turn_tool_calls, tuple[ds.ToolCall, ...])
    assert_type(session.create_response().follow_up, ds.Response | None)


def check_usage(usage: ds.Usage) -> None:
    assert_type(usage.total_tokens, int)
    assert_type(usage.input_tokens, int)
    assert_type(usage.output_tokens, int)
    assert_type(usage.input_tokens_details, ds.TokenDetails)
    assert_type(usage.input_tokens_details.audio_tokens, int)
    assert_type(usage.output_tokens_details.text_tokens, int)


def check_errors(error: ds.ResponseError) -> None:
    assert_type(error.result, ds.ResponseResult | None)
    if error.result is not None:
        assert_type(error.result.text, str)


def check_modalities() -> None:
    assert_type(ds.MODALITIES_TEXT, tuple[ds.Modality])
    assert_type(ds.MODALITIES_AUDIO, tuple[ds.Modality, ds.Modality])
    ds.SessionUpdate(modalities=["text", "audio"])
    ds.SessionUpdate(modalities=ds.MODALITIES_TEXT)
    # A plain string is refused by the type checker (and at run time); the
    # ignore is itself checked: --strict reports it if it stops being needed.
    ds.SessionUpdate(modalities="text")  # type: ignore[arg-type]
    ds.SessionUpdate(modalities=["text", "video"])  # type: ignore[list-item]


def check_usage_on_results(session: ds.RealtimeSession, done: ds.ResponseDone) -> None:
    assert_type(done.response.usage, ds.Usage | None)
    assert_type(session.create_response().wait().usage, ds.Usage | None)


def check_response_modalities_and_buffers(session: ds.RealtimeSession) -> None:
    """create_response takes Modality literals; audio takes any buffer, as at run time."""
    import array

    session.create_response(modalities=["text"])
    session.create_response(modalities=ds.MODALITIES_AUDIO)
    session.create_response(modalities="text")  # type: ignore[arg-type]
    session.append_audio(array.array("h", [0, 1]))
    session.append_audio(memoryview(b"\x00\x00"))
    session.append_audio("not audio")  # type: ignore[arg-type]


def check_transcription(client: ds.Client) -> None:
    session = client.transcription.connect(language="en")
    assert_type(session, ds.TranscriptionSession)
    assert_type(session.append_audio(b"\x00\x00"), str)
    for transcript in session.transcripts(timeout=5):
        assert_type(transcript, ds.Utterance)
        assert_type(transcript.stash, str)
        assert_type(transcript.speech_start_ms, int | None)
    assert_type(session.wait_for(ds.SessionFinished), ds.SessionFinished)
    assert_type(session.wait_for("session.finished"), ds.ServerEvent)
    assert_type(session.finish(timeout=5), None)
    result = client.transcription.transcribe("speech.wav", language="en")
    assert_type(result, ds.TranscriptionResult)
    assert_type(result.transcripts, tuple[ds.Utterance, ...])
    assert_type(result.language, str | None)
