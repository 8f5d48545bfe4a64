"""Tools that run themselves, over loopback against the local server: registration, running, failures, close."""

from __future__ import annotations

import gc
import json
import logging
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

OMNI_35 = ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME
#: Every family that takes tools: (model, whether it needs a workspace).
TOOL_MODELS = [
    OMNI_35,
    ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME,
    ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS,
]
#: A bound for waits that only a broken library reaches.
LONG = 20.0


def connect(
    server: LocalRealtimeServer, model: str = OMNI_35, **options: Any
) -> ds.RealtimeSession:
    client = ds.Client(server.api_key, base_url=server.url, workspace="ws-test")
    return client.realtime.connect(ds.RealtimeConfig(model=model, **options))


@pytest.fixture
def manual(server: LocalRealtimeServer) -> Iterator[ds.RealtimeSession]:
    """An Omni 3.5 session in manual mode, text replies."""
    with connect(server) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None, modalities=["text"]))
        yield session


def received(server: LocalRealtimeServer, kind: str) -> list[dict[str, Any]]:
    return [frame for frame in server.received if frame.get("type") == kind]


def outputs(server: LocalRealtimeServer) -> list[dict[str, Any]]:
    """The function_call_output items the server received, in order."""
    items = [frame["item"] for frame in received(server, "conversation.item.create")]
    return [item for item in items if item.get("type") == "function_call_output"]


def two_calls(first: tuple[str, str], second: tuple[str, str]) -> list[dict[str, Any]]:
    """A scripted reply that calls two tools at once."""
    items = [
        {"type": "function_call", "call_id": f"call_{i}", "name": name, "arguments": arguments}
        for i, (name, arguments) in enumerate((first, second))
    ]
    return [
        {"type": "response.created"},
        *(
            {
                "type": "response.function_call_arguments.done",
                "call_id": item["call_id"],
                "name": item["name"],
                "arguments": item["arguments"],
            }
            for item in items
        ),
        {"type": "response.done", "response": {"status": "completed", "output": items}},
    ]


def one_call(name: str, arguments: str) -> list[dict[str, Any]]:
    """A scripted reply that calls one tool (its item only in response.done)."""
    item = {"type": "function_call", "call_id": "call_0", "name": name, "arguments": arguments}
    return [
        {"type": "response.created"},
        {"type": "response.done", "response": {"status": "completed", "output": [item]}},
    ]


class _Seen:
    """What a session's handlers saw: responses created, done, and with audio delivered."""

    def __init__(self, session: ds.RealtimeSession) -> None:
        self.created: list[str] = []
        self.audio: set[str] = set()
        self._done: set[str] = set()
        # Guards created and _done; notified by the handler thread at each
        # response.created and response.done.
        self._changed = threading.Condition()
        session.on(ds.ResponseCreated, self._on_created)
        session.on(ds.ResponseAudioDelta, lambda e: self.audio.add(e.response_id))
        session.on(ds.ResponseDone, self._on_done)

    def _on_created(self, event: ds.ResponseCreated) -> None:
        with self._changed:
            self.created.append(event.response.id)
            self._changed.notify_all()

    def wait_created(self, count: int) -> list[str]:
        """Wait until the handlers took ``count`` response.created events; return their ids."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.created) >= count, LONG)
            return list(self.created)

    def _on_done(self, event: ds.ResponseDone) -> None:
        with self._changed:
            self._done.add(event.response.id)
            self._changed.notify_all()

    def wait_done(self, response_id: str | None) -> None:
        """Wait until the handlers took that response's response.done."""
        with self._changed:
            assert self._changed.wait_for(lambda: response_id in self._done, LONG)

    def wait_ended(self, count: int) -> None:
        """Wait until the handlers took ``count`` responses' response.done."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self._done) >= count, LONG)


class TestRegistering:
    """session.tool declares the whole list at once and waits for its acceptance."""

    def test_forms_and_one_update_with_every_tool(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """Decorator, decorator with options and call form each return fn; each update lists every tool."""

        @manual.tool
        def weather(city: str) -> str:
            """The weather in a city."""
            return city

        @manual.tool(name="clock", description="The time.", timeout=2.5)
        def time_now() -> str:
            return "noon"

        def add(a: int, b: int) -> int:
            """Add two numbers."""
            return a + b

        assert manual.tool(add, timeout=None) is add
        assert weather("x") == "x" and time_now() == "noon"
        updates = [
            f["session"] for f in received(server, "session.update") if "tools" in f["session"]
        ]
        assert [[t["function"]["name"] for t in u["tools"]] for u in updates] == [
            ["weather"],
            ["weather", "clock"],
            ["weather", "clock", "add"],
        ]
        assert updates[-1]["tools"][2] == {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers.",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
            },
        }
        tools = manual.tools
        assert list(tools) == ["weather", "clock", "add"]
        assert tools["clock"].description == "The time." and tools["clock"].timeout == 2.5
        assert tools["add"].timeout is None and tools["add"].function is add
        with pytest.raises(TypeError):
            tools["other"] = tools["add"]  # type: ignore[index]
        assert [t["function"]["name"] for t in manual.info.tools] == ["weather", "clock", "add"]

    def test_hand_declared_tools_are_kept(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """Tools declared by hand with update_session stay in the declared list."""
        manual.update_session(ds.SessionUpdate(tools=[ds.FunctionTool(name="manual_tool")]))

        @manual.tool
        def mine() -> str:
            """Mine."""
            return ""

        last = received(server, "session.update")[-1]["session"]["tools"]
        assert [t["function"]["name"] for t in last] == ["manual_tool", "mine"]
        with pytest.raises(ds.ConfigError, match="'manual_tool' is declared already"):
            manual.tool(lambda: None, name="manual_tool")

    def test_duplicate_and_bad_names(self, manual: ds.RealtimeSession) -> None:
        """A name already taken, or one the service would refuse, is a ConfigError."""
        manual.tool(lambda: "", name="once")
        with pytest.raises(ds.ConfigError, match="declared already"):
            manual.tool(lambda: "", name="once")
        with pytest.raises(ds.ConfigError, match="tool name"):
            manual.tool(lambda: "", name="has space")
        with pytest.raises(ds.ConfigError, match="timeout"):
            manual.tool(lambda: "", name="t", timeout=-1)
        with pytest.raises(ds.ConfigError, match="must be a function"):
            manual.tool(3, name="n")  # type: ignore[call-overload]

    def test_refused_update_registers_nothing(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """The server's refusal is raised, and the tool is not registered."""
        server.inject_error("session.update", {"type": "invalid_request_error", "message": "no"})
        with pytest.raises(ds.APIError, match="no"):
            manual.tool(lambda: "", name="refused")
        assert "refused" not in manual.tools

    def test_remove_tool(self, manual: ds.RealtimeSession, server: LocalRealtimeServer) -> None:
        """remove_tool declares the rest; an unknown name is a ConfigError."""
        manual.tool(lambda: "", name="a")
        manual.tool(lambda: "", name="b")
        manual.remove_tool("a")
        assert list(manual.tools) == ["b"]
        last = received(server, "session.update")[-1]["session"]["tools"]
        assert [t["function"]["name"] for t in last] == ["b"]
        with pytest.raises(ds.ConfigError, match="no tool 'a'"):
            manual.remove_tool("a")

    @pytest.mark.parametrize(
        "model", [ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, ds.MODEL_QWEN3_OMNI_FLASH_REALTIME]
    )
    def test_family_without_tools(self, server: LocalRealtimeServer, model: str) -> None:
        """LiveTranslate and the legacy models refuse a tool before anything is sent."""
        with connect(server, model) as session:
            sent = len(server.received)
            with pytest.raises(ds.ConfigError, match="takes no tools"):
                session.tool(lambda: "", name="nope")
            assert len(server.received) == sent
            assert not session.tools

    def test_unsupported_hint_names_the_parameter(self, manual: ds.RealtimeSession) -> None:
        """A parameter the model cannot be told about is refused at registration."""

        def bad(thing: object) -> None:
            """Bad."""

        with pytest.raises(ds.ConfigError, match="parameter 'thing'"):
            manual.tool(bad)

    def test_not_from_a_handler(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """Registering waits for the server, so a handler cannot do it (UsageError, nothing sent)."""
        raised: list[BaseException] = []
        ran = threading.Event()

        def register(event: ds.ServerEvent) -> None:
            try:
                manual.tool(lambda: "", name="inside")
            except ds.UsageError as exc:
                raised.append(exc)
            ran.set()

        manual.on(ds.ResponseDone, register)
        manual.respond(text="hello", timeout=LONG)
        assert ran.wait(LONG)
        assert len(raised) == 1 and "handler" in str(raised[0])
        assert "inside" not in manual.tools
        assert not any("tools" in f["session"] for f in received(server, "session.update"))

    def test_bad_on_tool_error(self) -> None:
        """on_tool_error takes "send" or "raise" only."""
        with pytest.raises(ds.ConfigError, match="on_tool_error"):
            ds.RealtimeConfig(on_tool_error="ignore")  # type: ignore[arg-type]


class TestRunning:
    """A reply that calls a registered tool: it runs, its output goes back, the next reply comes."""

    @pytest.mark.parametrize("model", TOOL_MODELS)
    @pytest.mark.parametrize("vad", [False, True], ids=["manual", "server_vad"])
    def test_each_family_and_turn_mode(
        self, server: LocalRealtimeServer, model: str, vad: bool
    ) -> None:
        """respond() follows the loop to the final answer; no double response under server VAD."""
        with connect(server, model) as session:
            if not vad:
                session.update_session(ds.SessionUpdate(turn_detection=None))
            threads = []

            @session.tool
            def get_weather(city: str) -> dict[str, str]:
                """The weather in a city."""
                threads.append(threading.current_thread().name)
                return {"city": city, "sky": "rain"}

            result = session.respond(text='get_weather {"city": "Paris"}', timeout=LONG)
            assert "I received the output of function call" in result.text
            assert '{"city":"Paris","sky":"rain"}' in result.text
            (call,) = result.turn_tool_calls
            assert (call.name, call.arguments, call.result) == (
                "get_weather",
                {"city": "Paris"},
                {"city": "Paris", "sky": "rain"},
            )
            assert call.ok and call.duration is not None and f'"{call.output}"' in result.text
            assert len(result.tool_rounds) == 1 and result.tool_rounds[0].tool_calls == (call,)
            assert threads == ["dashscope_sync-tool-get_weather"]
            assert outputs(server) == [
                {"type": "function_call_output", "call_id": call.call_id, "output": call.output}
            ]
            # Manual mode: the library asks for the answer; under VAD the server answers itself.
            assert len(received(server, "response.create")) == (1 if vad else 2)

    def test_wait_returns_after_the_tools_with_their_records(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """Response.wait() of the calling reply returns once its tools ran; follow_up is the answer."""
        release = threading.Event()

        @manual.tool
        def slow(n: int) -> int:
            """Slow."""
            release.wait(LONG)
            return n * 2

        manual.append_text('slow {"n": 21}')
        handle = manual.create_response()
        server.wait_for_received("response.create", timeout=LONG)
        with pytest.raises(ds.DashScopeTimeout):
            handle.wait(timeout=0.2)  # the reply is done, its tool is not
        assert handle.result is None and handle.follow_up is None
        release.set()
        result = handle.wait(timeout=LONG)
        assert [c.result for c in result.tool_calls] == [42]
        follow_up = handle.follow_up
        assert follow_up is not None and handle.follow_up is follow_up
        assert "42" in follow_up.wait(timeout=LONG).text

    def test_concurrent_calls_answered_in_order(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """Two calls of one reply run at the same time; their outputs go in the reply's order."""
        both = threading.Barrier(2, timeout=LONG)

        @manual.tool
        def first() -> str:
            """First."""
            both.wait()  # returns only when the second runs too
            return "one"

        @manual.tool
        def second() -> str:
            """Second."""
            both.wait()
            return "two"

        server.script_response(two_calls(("second", "{}"), ("first", "{}")))
        result = manual.respond(text="go", timeout=LONG)
        calls = result.turn_tool_calls
        assert [(c.name, c.result, c.error) for c in calls] == [
            ("second", "two", None),
            ("first", "one", None),
        ]
        assert [item["output"] for item in outputs(server)] == ["two", "one"]
        assert [item["call_id"] for item in outputs(server)] == ["call_0", "call_1"]
        assert len(received(server, "response.create")) == 2  # one per reply, not per call

    def test_two_calls_under_server_vad_follow_one_answer(
        self, server: LocalRealtimeServer
    ) -> None:
        """Server VAD answers each output: respond() gets the last answer; the other is never heard."""
        with connect(server) as session:
            session.tool(lambda: "one", name="first")
            session.tool(lambda: "two", name="second")
            seen = _Seen(session)
            server.script_response(two_calls(("first", "{}"), ("second", "{}")))
            result = session.respond(text="go", timeout=LONG)
            assert [c.name for c in result.turn_tool_calls] == ["first", "second"]
            seen.wait_done(result.response_id)
            # The server started one answer per output; the last saw both.
            calling, superseded, answer = seen.created
            assert len(received(server, "response.create")) == 1
            assert result.response_id == answer and result.tool_rounds[0].response_id == calling
            assert 'call_1: "two"' in result.text and result.audio
            # The superseded answer's audio reached no one (handlers, speaker, buffer).
            assert superseded not in seen.audio and answer in seen.audio
            turns = {t.response_id: t for t in session.transcript if t.role == "assistant"}
            assert turns[superseded].interrupted and turns[superseded].heard_text == ""
            assert not turns[answer].interrupted and turns[answer].heard_text == result.text
            # No answer is left over for a later respond() to pick up.
            with pytest.raises(ds.ConfigError, match="needs audio"):
                session.respond(timeout=LONG)

    def test_registered_and_hand_declared_call_under_server_vad(
        self, server: LocalRealtimeServer
    ) -> None:
        """Under VAD the answer to the library's output is not heard; the program's answer is."""
        with connect(server) as session:
            session.update_session(ds.SessionUpdate(tools=[ds.FunctionTool(name="by_hand")]))
            session.tool(lambda: "ours", name="registered")
            seen = _Seen(session)
            server.script_response(two_calls(("registered", "{}"), ("by_hand", "{}")))
            calling = session.respond(text="go", timeout=LONG)
            assert [c.name for c in calling.tool_calls] == ["registered"]
            hand = next(o for o in calling.output if o.name == "by_hand")
            session.send_function_output(hand.call_id or "", "theirs")
            answer = session.respond(timeout=LONG)
            seen.wait_done(answer.response_id)
            assert 'call_1: "theirs"' in answer.text and answer.audio
            ours = [r for r in seen.created if r not in (calling.response_id, answer.response_id)]
            assert len(ours) == 1 and ours[0] not in seen.audio
            assert answer.response_id in seen.audio

    @pytest.mark.parametrize("late", [False, True], ids=["respond_at_once", "after_its_answer"])
    def test_program_answering_first_hears_the_answer_that_saw_the_registered_tool(
        self, server: LocalRealtimeServer, late: bool
    ) -> None:
        """Under VAD, when the program's output goes before the registered tool's, the answer heard saw both."""
        with connect(server) as session:
            session.update_session(ds.SessionUpdate(tools=[ds.FunctionTool(name="by_hand")]))
            theirs_sent = threading.Event()

            def registered() -> str:
                assert theirs_sent.wait(LONG)  # the program's output goes first
                return "ours"

            session.tool(registered, name="registered")
            seen = _Seen(session)
            server.script_response(two_calls(("registered", "{}"), ("by_hand", "{}")))
            session.append_text("go")
            calling = session.create_response()
            done = session.wait_for(ds.ResponseDone, timeout=LONG)
            hand = next(o for o in done.response.output if o.name == "by_hand")
            session.send_function_output(hand.call_id or "", "theirs")
            if late:
                # The silenced answer to the program's output ended before respond():
                # the answer to the library's output is still the one to follow.
                session.wait_for(ds.ResponseDone, timeout=LONG)
            theirs_sent.set()
            answer = session.respond(timeout=LONG)
            seen.wait_done(answer.response_id)
            called = calling.wait(timeout=LONG)
            assert [c.name for c in called.tool_calls] == ["registered"]
            # The answer heard came after the library's output: it saw both outputs.
            assert 'call_0: "ours"' in answer.text and answer.audio
            assert [o["output"] for o in outputs(server)] == ["theirs", "ours"]
            early = [r for r in seen.created if r not in (called.response_id, answer.response_id)]
            assert len(early) == 1 and early[0] not in seen.audio
            assert answer.response_id in seen.audio
            turns = {t.response_id: t for t in session.transcript if t.role == "assistant"}
            assert turns[early[0]].interrupted and turns[early[0]].heard_text == ""

    @pytest.mark.parametrize("vad", [False, True], ids=["manual", "server_vad"])
    def test_interrupt_while_a_tool_runs(self, server: LocalRealtimeServer, vad: bool) -> None:
        """interrupt() during a tool: its output still goes, but no answer to it is asked for or heard."""
        with connect(server) as session:
            if not vad:
                session.update_session(ds.SessionUpdate(turn_detection=None))
            running, release = threading.Event(), threading.Event()

            @session.tool
            def slow() -> str:
                """Slow."""
                running.set()
                release.wait(LONG)
                return "late"

            seen = _Seen(session)
            server.script_response(one_call("slow", "{}"))
            session.append_text("slow")
            handle = session.create_response()
            assert running.wait(LONG)
            session.interrupt()  # the user said "never mind"
            release.set()
            result = handle.wait(timeout=LONG)
            assert [c.result for c in result.tool_calls] == ["late"]
            assert handle.follow_up is None
            # The output went (the history stays whole): the item.create after the text.
            output = server.wait_for_received("conversation.item.create", count=2, timeout=LONG)
            assert output["item"]["type"] == "function_call_output"
            if vad:
                # The server's own answer to it starts, but is cancelled and never heard.
                server.wait_for_received("response.cancel", timeout=LONG)
                # The cancel leaves from the reader, which may be ahead of the
                # handler thread: wait for the handlers to take the answer's start.
                answer = [r for r in seen.wait_created(2) if r != result.response_id]
                seen.wait_done(answer[0])
                assert len(answer) == 1 and answer[0] not in seen.audio
            # The next turn is answered normally, and nothing else was asked for.
            after = session.respond(text="hello", timeout=LONG)
            assert after.audio and not after.interrupted
            assert len(received(server, "response.create")) == 2

    def test_tool_call_handlers_in_order(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """on(ToolCall) handlers get each call after its reply's response.done; "*" gets none."""
        seen: list[str] = []
        every: list[object] = []
        manual.on(ds.ResponseDone, lambda e: seen.append("done"))
        manual.on(ds.ToolCall, lambda c: seen.append(f"call {c.name}"))
        manual.on("*", every.append)
        manual.tool(lambda: "x", name="ping")
        manual.respond(text="ping", timeout=LONG)
        finished = threading.Event()
        manual.on(ds.ResponseDone, lambda e: finished.set())
        manual.respond(text="hello", timeout=LONG)
        assert finished.wait(LONG)
        assert seen[:3] == ["done", "call ping", "done"]
        assert not any(isinstance(e, ds.ToolCall) for e in every)
        with pytest.raises(ds.ConfigError, match="ToolCall"):
            manual.wait_for(ds.ToolCall)  # type: ignore[arg-type]

    def test_tool_call_record_is_never_dropped_for_handlers(
        self, server: LocalRealtimeServer
    ) -> None:
        """A full handler backlog drops events, never a ToolCall: on(ToolCall) gets it, in order."""
        with connect(server, max_handler_backlog=4) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None))  # spoken replies
            gate = threading.Event()
            blocked = threading.Event()  # the handler thread is held in the first handler
            order: list[str] = []
            got = threading.Event()

            def on_done(event: ds.ResponseDone) -> None:
                order.append("done")
                blocked.set()
                gate.wait(LONG)

            def on_call(call: ds.ToolCall) -> None:
                order.append(f"call {call.name}")
                got.set()

            def ping() -> str:
                # The answer is asked for only once the handler thread is held: on a loaded
                # machine it may not have taken the call's response.done yet, and the
                # answer's audio would trim it off the backlog's front first.
                assert blocked.wait(LONG)
                return "pong"

            session.on(ds.ResponseDone, on_done)
            session.on(ds.ToolCall, on_call)
            session.tool(ping, name="ping")
            server.script_response(one_call("ping", "{}"))
            result = session.respond(text="go", timeout=LONG)
            assert [c.name for c in result.turn_tool_calls] == ["ping"]
            # The answer's audio overflowed the backlog behind the blocked handler.
            assert session.dropped_for_handlers > 0
            gate.set()
            assert got.wait(LONG)
            assert order[:2] == ["done", "call ping"]

    def test_one_read_only_record_for_every_reader(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """The record a handler gets is the result's; its arguments refuse changes, yet dump as JSON."""
        handled: list[ds.ToolCall] = []
        got = threading.Event()
        manual.on(ds.ToolCall, lambda call: (handled.append(call), got.set()))

        @manual.tool
        def weather(city: str) -> str:
            """The weather in a city."""
            return city

        result = manual.respond(text='weather {"city": "Paris"}', timeout=LONG)
        assert got.wait(LONG)
        (call,) = result.turn_tool_calls
        assert handled == [call] and handled[0] is call
        with pytest.raises(TypeError, match="read-only"):
            call.arguments["city"] = "Rome"  # type: ignore[index]
        with pytest.raises(TypeError, match="read-only"):
            call.arguments.update(city="Rome")  # type: ignore[union-attr]
        assert call.arguments == {"city": "Paris"} and isinstance(call.arguments, dict)
        assert json.loads(json.dumps(call.arguments)) == {"city": "Paris"}
        copy = dict(call.arguments or {})
        copy["city"] = "Rome"
        again = ds.Transcript.from_json(manual.transcript.to_json())
        assert [c.arguments for t in again for c in t.tool_calls] == [{"city": "Paris"}]

    def test_hand_declared_call_is_left_to_the_program(
        self, manual: ds.RealtimeSession, server: LocalRealtimeServer
    ) -> None:
        """A call of a tool declared by hand gets no output and no next reply from the library."""
        manual.update_session(ds.SessionUpdate(tools=[ds.FunctionTool(name="by_hand")]))
        manual.tool(lambda: "", name="registered")
        result = manual.respond(text="by_hand", timeout=LONG)
        assert result.tool_calls == () and result.output[0].name == "by_hand"
        assert outputs(server) == [] and len(received(server, "response.create")) == 1


class TestFailures:
    """Each failure sends an error the model can read, is logged once, and never stalls."""

    def run_failing(
        self,
        session: ds.RealtimeSession,
        server: LocalRealtimeServer,
        caplog: pytest.LogCaptureFixture,
        text: str,
    ) -> ds.ToolCall:
        with caplog.at_level(logging.WARNING, logger="dashscope_sync"):
            result = session.respond(text=text, timeout=LONG)
        (call,) = result.turn_tool_calls
        assert call.error is not None and not call.ok and call.result is None
        assert call.output == json.dumps({"error": call.error}, separators=(",", ":"))
        assert outputs(server)[-1]["output"] == call.output
        assert "I received the output of function call" in result.text  # the loop went on
        warnings = [r for r in caplog.records if "tool call" in r.getMessage()]
        assert len(warnings) == 1 and call.error in warnings[0].getMessage()
        return call

    def test_unknown_tool(
        self,
        manual: ds.RealtimeSession,
        server: LocalRealtimeServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A tool that is neither registered nor declared gets an "unknown tool" error."""
        manual.tool(lambda: "", name="known")
        server.script_response(one_call("ghost", ""))
        call = self.run_failing(manual, server, caplog, "go")
        assert call.error == "unknown tool 'ghost' (the tools are: known)"

    @pytest.mark.parametrize(
        ("arguments", "error"),
        [
            ('{"n": "three"}', 'bad arguments for half: n: expected an integer, got "three"'),
            ("{}", "bad arguments for half: missing required argument(s) n"),
        ],
    )
    def test_bad_arguments(
        self,
        manual: ds.RealtimeSession,
        server: LocalRealtimeServer,
        caplog: pytest.LogCaptureFixture,
        arguments: str,
        error: str,
    ) -> None:
        """Arguments that do not fit are an error naming the argument; the tool does not run."""
        ran = []

        @manual.tool
        def half(n: int) -> float:
            """Half."""
            ran.append(n)
            return n / 2

        call = self.run_failing(manual, server, caplog, f"half {arguments}")
        assert call.error == error and ran == [] and call.duration is None

    def test_arguments_that_do_not_parse(
        self,
        manual: ds.RealtimeSession,
        server: LocalRealtimeServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Arguments that are not JSON are an error, with arguments None and the raw text kept."""
        manual.tool(lambda: "", name="f")
        server.script_response(one_call("f", "{oops"))
        call = self.run_failing(manual, server, caplog, "go")
        assert call.error.startswith("bad arguments for f: the arguments are not valid JSON")
        assert call.arguments is None and call.raw_arguments == "{oops"

    def test_exception(
        self,
        manual: ds.RealtimeSession,
        server: LocalRealtimeServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A tool that raises sends its exception as the error; the default only sends it."""

        @manual.tool
        def broken() -> str:
            """Broken."""
            raise ValueError("no data today")

        call = self.run_failing(manual, server, caplog, "broken")
        assert call.error == "broken raised ValueError: no data today"
        assert call.duration is not None
        manual.respond(text="hello", timeout=LONG)  # no ToolError with on_tool_error="send"

    def test_result_that_is_not_json(
        self,
        manual: ds.RealtimeSession,
        server: LocalRealtimeServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A result that cannot be sent as JSON is an error too."""
        manual.tool(lambda: object(), name="opaque")
        call = self.run_failing(manual, server, caplog, "opaque")
        assert "not JSON-serialisable" in call.error

    def test_timeout(
        self,
        manual: ds.RealtimeSession,
        server: LocalRealtimeServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A call past its timeout is abandoned: the model hears so and the loop goes on."""
        release = threading.Event()

        @manual.tool(timeout=0.2)
        def stuck() -> str:
            """Stuck."""
            release.wait(LONG)
            return "late"

        try:
            call = self.run_failing(manual, server, caplog, "stuck")
            assert call.error == (
                "stuck did not finish within 0.2 s; it was abandoned (it may still be running)"
            )
        finally:
            release.set()

    def test_on_tool_error_raise(self, server: LocalRealtimeServer) -> None:
        """With on_tool_error="raise" the program gets ToolError, after the model got the error."""
        with connect(server, on_tool_error="raise") as session:
            session.update_session(ds.SessionUpdate(turn_detection=None))

            @session.tool
            def broken() -> str:
                """Broken."""
                raise KeyError("gone")

            with pytest.raises(ds.ToolError) as info:
                session.respond(text="broken", timeout=LONG)
            error = info.value
            assert isinstance(error, RuntimeError) and isinstance(error, ds.DashScopeError)
            assert error.call is not None and error.call.name == "broken"
            assert isinstance(error.__cause__, KeyError)
            # The conversation did not stall: the error went out and the answer was asked for.
            server.wait_for_received("response.create", count=2, timeout=LONG)
            assert "KeyError" in outputs(server)[0]["output"]
            # The answer to the error is under way: the next turn waits for it to end.
            session.wait_for(ds.ResponseDone, timeout=LONG)  # the reply that called the tool
            answer = session.wait_for(ds.ResponseDone, timeout=LONG)
            assert "KeyError" in answer.response.output[0].content[0].value
            assert "hello" in session.respond(text="hello", timeout=LONG).text  # raised once


class TestClose:
    """close() never waits for a tool that does not return."""

    def test_close_with_a_stuck_tool(self, server: LocalRealtimeServer) -> None:
        """close() returns while a tool without a timeout is stuck; the waiting handle fails."""
        started, release = threading.Event(), threading.Event()
        session = connect(server)
        try:
            session.update_session(ds.SessionUpdate(turn_detection=None))

            @session.tool(timeout=None)
            def stuck() -> str:
                """Stuck."""
                started.set()
                release.wait(LONG)
                return "late"

            session.append_text("stuck")
            handle = session.create_response()
            assert started.wait(LONG)
            closer = threading.Thread(target=session.close)
            closer.start()
            closer.join(LONG)
            assert not closer.is_alive()
            with pytest.raises(ds.SessionClosedError, match="tool calls"):
                handle.wait(timeout=LONG)
            assert not any(t.name == "dashscope_sync-tools" for t in threading.enumerate())
        finally:
            release.set()
            session.close()

    def test_register_on_a_closed_session(self, server: LocalRealtimeServer) -> None:
        """Registering on a closed session raises SessionClosedError and starts no thread."""
        session = connect(server)
        session.close()
        with pytest.raises(ds.SessionClosedError):
            session.tool(lambda: "", name="late")
        assert not any(t.name == "dashscope_sync-tools" for t in threading.enumerate())

    def test_dropped_session_with_a_tool_is_collected(self, server: LocalRealtimeServer) -> None:
        """A dropped session whose tool refers to it is collected and warned about; the
        tool worker ends with it (the leak check joins it)."""

        def open_and_drop() -> weakref.ref[ds.RealtimeSession]:
            session = connect(server)
            session.tool(lambda: session.id, name="whoami")
            return weakref.ref(session)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ref = open_and_drop()
            for _ in range(3):
                gc.collect()
        assert ref() is None
        assert any(issubclass(w.category, ResourceWarning) for w in caught)


def test_tool_loop_stops_after_max_rounds(
    manual: ds.RealtimeSession, server: LocalRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop itself stops at MAX_TOOL_ROUNDS: the last outputs go, no response.create follows."""
    from dashscope_sync._core.tool_book import MAX_TOOL_ROUNDS

    count: list[int] = []

    @manual.tool
    def again() -> int:
        """Again."""
        count.append(1)
        return len(count)

    for _ in range(MAX_TOOL_ROUNDS):
        server.script_response(one_call("again", "{}"))
    # What a further round would get; without the bound the loop takes it.
    server.script_response([{"type": "response.created"}, {"type": "response.done"}])
    with caplog.at_level(logging.WARNING, logger="dashscope_sync"):
        result = manual.respond(text="go", timeout=LONG)
    assert len(result.tool_rounds) == MAX_TOOL_ROUNDS - 1
    assert [c.result for c in result.turn_tool_calls] == list(range(1, MAX_TOOL_ROUNDS + 1))
    assert any("still calling tools" in r.getMessage() for r in caplog.records)
    # Nothing runs on after respond(): the next turn gets the scripted reply.
    after = manual.respond(text="next", timeout=LONG)
    assert after.tool_calls == () and len(count) == MAX_TOOL_ROUNDS
    # One response.create for the turn, one per round but the last, one for the next turn.
    assert len(received(server, "response.create")) == MAX_TOOL_ROUNDS + 1
    assert len(outputs(server)) == MAX_TOOL_ROUNDS


def test_tool_loop_stops_after_max_rounds_under_server_vad(
    server: LocalRealtimeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Under server VAD the loop stops at MAX_TOOL_ROUNDS too: the server's own answer to the
    last outputs is silenced and cancelled, never heard, and the next turn is answered."""
    from dashscope_sync._core.tool_book import MAX_TOOL_ROUNDS

    count: list[int] = []
    with connect(server) as session:

        @session.tool
        def again() -> int:
            """Again."""
            count.append(1)
            return len(count)

        seen = _Seen(session)
        for _ in range(MAX_TOOL_ROUNDS):
            server.script_response(one_call("again", "{}"))
        with caplog.at_level(logging.WARNING, logger="dashscope_sync"):
            result = session.respond(text="go", timeout=LONG)
        assert len(result.tool_rounds) == MAX_TOOL_ROUNDS - 1
        assert [c.result for c in result.turn_tool_calls] == list(range(1, MAX_TOOL_ROUNDS + 1))
        assert any("still calling tools" in r.getMessage() for r in caplog.records)
        server.wait_for_received("response.cancel", timeout=LONG)
        seen.wait_ended(MAX_TOOL_ROUNDS + 1)  # the calling replies and the cancelled answer
        assert len(seen.created) == MAX_TOOL_ROUNDS + 1
        assert seen.created[-1] not in seen.audio
        after = session.respond(text="next", timeout=LONG)
        assert after.tool_calls == () and after.audio and len(count) == MAX_TOOL_ROUNDS
        # The server answers each output by itself: a response.create per turn only.
        assert len(received(server, "response.create")) == 2
        assert len(received(server, "response.cancel")) == 1
        assert len(outputs(server)) == MAX_TOOL_ROUNDS


def test_tool_calls_land_on_the_transcript_turn_that_made_them(
    manual: ds.RealtimeSession,
) -> None:
    """A reply's tool calls are on its assistant turn in session.transcript, with their results."""

    @manual.tool
    def double(n: int) -> int:
        """Double a number."""
        return n * 2

    result = manual.respond(text='double {"n": 21}', timeout=LONG)
    assert "42" in result.text
    calling = [turn for turn in manual.transcript if turn.tool_calls]
    assert len(calling) == 1
    (call,) = calling[0].tool_calls
    assert (call.name, call.arguments, call.result) == ("double", {"n": 21}, 42)
    assert calling[0].response_id == result.tool_rounds[0].response_id


def test_function_output_frame_comes_from_the_codec() -> None:
    """The function_call_output frame both answer paths send is built by _wire.codec alone."""
    from dashscope_sync._wire.codec import encode_function_output

    frame = json.loads(encode_function_output("event_1", "call_1", '{"a":"é"}'))
    assert frame == {
        "event_id": "event_1",
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"a":"é"}'},
    }
    import inspect

    from dashscope_sync._core import core

    assert '"type": "function_call_output"' not in inspect.getsource(core)


def test_reconnect_carries_the_registered_tools(
    manual: ds.RealtimeSession, server: LocalRealtimeServer
) -> None:
    """reconnect() gives the new session the same tools, declared once, and they answer calls."""

    @manual.tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"rain in {city}"

    before = manual.tools["get_weather"]
    updates = len(received(server, "session.update"))
    with manual.reconnect(timeout=LONG) as fresh:
        assert fresh.tools == {"get_weather": before}
        (restoring,) = received(server, "session.update")[updates:]
        assert [t["function"]["name"] for t in restoring["session"]["tools"]] == ["get_weather"]
        result = fresh.respond(text='get_weather {"city": "Paris"}', timeout=LONG)
        (call,) = result.turn_tool_calls
        assert call.result == "rain in Paris" and "rain in Paris" in result.text
        assert outputs(server)[-1]["call_id"] == call.call_id


def test_reconnect_without_restore_carries_no_tools(
    manual: ds.RealtimeSession, server: LocalRealtimeServer
) -> None:
    """reconnect(restore=False) starts with no tools registered, as none are declared."""

    @manual.tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return city

    with manual.reconnect(restore=False, timeout=LONG) as fresh:
        assert fresh.tools == {}


class TestToolBookPlan:
    """The pure decision of how a reply's tool outputs are answered (no sockets)."""

    @staticmethod
    def book(round: int = 0, cut: bool = False) -> Any:
        from dashscope_sync._core.tool_book import ToolBook

        book = ToolBook()
        if round:
            book.rounds["r"] = round
        if cut:
            book.cut.add("r")
        return book

    @staticmethod
    def track() -> Any:
        from dashscope_sync._core.state import ResponseTrack

        return ResponseTrack(None, 0.0)

    def test_manual_mode_asks_until_the_limit(self) -> None:
        """Manual mode: response.create unless the limit, an interrupt or the program's calls stop it."""
        from dashscope_sync._core.tool_book import MAX_TOOL_ROUNDS

        plan = self.book().plan("r", 2, True, False, self.track)
        assert plan.create and plan.answers == [None, None] and plan.round == 1
        last = self.book(MAX_TOOL_ROUNDS).plan("r", 1, True, False, self.track)
        assert not last.create and last.stopped == "limit"
        cut = self.book(cut=True).plan("r", 1, True, False, self.track)
        assert not cut.create and cut.stopped == "interrupted"
        assert not self.book().plan("r", 1, False, False, self.track).create

    def test_server_vad_follows_the_last_answer_and_silences_the_rest(self) -> None:
        """Server VAD: one answer per output; the last is followed, the others silenced, not cancelled."""
        plan = self.book().plan("r", 3, True, True, self.track)
        first, second, last = plan.answers
        assert plan.follow_up is last and not plan.create
        assert first.silent and second.silent and not last.silent
        assert not (first.cancel_wanted or second.cancel_wanted or last.cancel_wanted)

    def test_server_vad_stopped_turn_cancels_only_its_last_answer(self) -> None:
        """Past the limit (or cut) the last answer is silenced and cancelled; for the program's calls it is not cancelled."""
        from dashscope_sync._core.tool_book import MAX_TOOL_ROUNDS

        stopped = self.book(MAX_TOOL_ROUNDS).plan("r", 2, True, True, self.track)
        assert stopped.follow_up is None and all(t.silent for t in stopped.answers)
        assert [t.cancel_wanted for t in stopped.answers] == [False, True]
        theirs = self.book().plan("r", 2, False, True, self.track)
        assert theirs.follow_up is None and all(t.silent for t in theirs.answers)
        assert not any(t.cancel_wanted for t in theirs.answers)

    def test_cut_turns_silences_what_has_not_started(self) -> None:
        """interrupt() marks running turns cut and silences planned or requested answers not started."""
        book = self.book()
        book.waiting["running"] = None
        plan = book.plan("r", 1, True, True, self.track)
        requested = self.track()
        requested.tool_round = 1
        plain = self.track()  # a reply the program asked for: not the tool loop's
        book.cut_turns([requested, plain], cancel=True)
        assert "running" in book.cut
        assert plan.follow_up is not None and plan.follow_up.silent and plan.follow_up.cancel_wanted
        assert requested.silent and requested.cancel_wanted and not plain.silent

    def test_cut_turns_cancels_only_the_last_answer_of_the_library_calls(self) -> None:
        """A cut cancels only the latest plan's last answer, and none when the program still owes outputs."""
        book = self.book()
        earlier = book.plan("a", 1, True, True, self.track)
        latest = book.plan("b", 2, True, True, self.track)
        book.cut_turns([], cancel=True)
        assert all(t.silent for t in [*earlier.answers, *latest.answers])
        assert [t.cancel_wanted for t in [*earlier.answers, *latest.answers]] == [
            False,
            False,
            True,
        ]
        mixed = self.book()
        ours = mixed.plan("a", 1, True, True, self.track)
        theirs = mixed.plan("b", 1, False, True, self.track)
        mixed.cut_turns([], cancel=True)
        assert all(t.silent for t in [*ours.answers, *theirs.answers])
        assert not any(t.cancel_wanted for t in [*ours.answers, *theirs.answers])
