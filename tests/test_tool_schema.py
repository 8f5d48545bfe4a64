"""Tools, the pure layers: a function's JSON Schema and argument binding, and the tool book of the state."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Annotated, Any, Literal, Optional, TypedDict

import attrs
import pytest

import dashscope_sync as ds
from dashscope_sync._conversation.schema import (
    ArgumentsError,
    jsonable,
    parse_arguments,
    signature_of,
)
from dashscope_sync._core.state import RequestKind, SessionState
from dashscope_sync._core.tool_book import DueCall, ToolBook
from dashscope_sync._wire.codec import decode
from dashscope_sync._wire.families import ModelFamily, takes_tools


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Place(TypedDict):
    city: str
    country: str


@attrs.frozen
class Window:
    days: int
    hourly: bool = False


@dataclasses.dataclass
class Point:
    lat: float
    lon: float


def forecast(
    city: str,
    unit: Unit = Unit.CELSIUS,
    days: int = 1,
    place: Optional[Place] = None,  # noqa: UP045 - Optional is one of the spellings taken
    window: Window | None = None,
    tags: list[str] | None = None,
    mode: Literal["brief", "full"] = "brief",
    pair: tuple[int, int] = (0, 0),
    note: Annotated[str, "A note for the forecaster."] = "",
    point: Point | None = None,
    ratio: float = 1.0,
    hot: bool = False,
) -> dict[str, Any]:
    """Get the weather forecast for a city.

    Second paragraph: not part of the description.

    Args:
        city: The city, e.g. Paris.
        unit (Unit): Celsius or
            fahrenheit.

    Returns:
        The forecast.
    """
    return {}


class TestSchema:
    """signature_of: the description and JSON Schema registration declares."""

    def test_description_is_the_first_paragraph(self) -> None:
        """The docstring's first paragraph is the description, on one line."""
        assert signature_of(forecast, "f").description == "Get the weather forecast for a city."

    def test_every_supported_hint(self) -> None:
        """Each supported hint maps to its JSON Schema; only parameters without default are required."""
        props = signature_of(forecast, "f").parameters["properties"]
        assert props["city"] == {"type": "string", "description": "The city, e.g. Paris."}
        assert props["unit"] == {
            "type": "string",
            "enum": ["celsius", "fahrenheit"],
            "description": "Celsius or fahrenheit.",
        }
        assert props["days"] == {"type": "integer"}
        assert props["ratio"] == {"type": "number"}
        assert props["hot"] == {"type": "boolean"}
        assert props["place"]["properties"] == {
            "city": {"type": "string"},
            "country": {"type": "string"},
        }
        assert props["place"]["required"] == ["city", "country"]
        assert props["window"] == {
            "type": "object",
            "properties": {"days": {"type": "integer"}, "hourly": {"type": "boolean"}},
            "required": ["days"],
        }
        assert props["point"]["required"] == ["lat", "lon"]
        assert props["tags"] == {"type": "array", "items": {"type": "string"}}
        assert props["mode"] == {"type": "string", "enum": ["brief", "full"]}
        assert props["pair"]["prefixItems"] == [{"type": "integer"}] * 2
        assert props["note"] == {"type": "string", "description": "A note for the forecaster."}
        assert signature_of(forecast, "f").parameters["required"] == ["city"]

    def test_optional_without_default_is_not_required(self) -> None:
        """An `X | None` parameter is not required even without a default."""

        def f(a: int, b: str | None) -> None:
            """F."""

        assert signature_of(f, "f").parameters["required"] == ["a"]

    @pytest.mark.parametrize(
        ("fn", "match"),
        [
            (lambda *args: None, r"\*args"),
            (lambda **kw: None, r"\*\*kw"),
            (lambda x: None, "parameter 'x': it has no type hint"),
        ],
    )
    def test_undescribable_parameter(self, fn: Any, match: str) -> None:
        """*args, **kwargs and a parameter without a hint are ConfigErrors naming it."""
        with pytest.raises(ds.ConfigError, match=match):
            signature_of(fn, "f")

    @pytest.mark.parametrize("hint", [object, Any, list, set[int], dict[int, str], bytes])
    def test_unsupported_hint(self, hint: Any) -> None:
        """A hint the model cannot be told about is a ConfigError naming the parameter."""

        def f(value: int) -> None:
            """F."""

        f.__annotations__["value"] = hint
        with pytest.raises(ds.ConfigError, match="tool 'f', parameter 'value'"):
            signature_of(f, "f")


class TestBinding:
    """The model's JSON arguments, checked and converted back to Python values."""

    def bind(self, raw: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return signature_of(forecast, "forecast").bind(parse_arguments(raw))

    def test_values_are_converted(self) -> None:
        """Enum members, ints from 3.0, attrs/dataclass instances, tuples come back as Python values."""
        _, kwargs = self.bind(
            '{"city": "Paris", "unit": "fahrenheit", "days": 3.0, "window": {"days": 2},'
            ' "pair": [1, 2], "point": {"lat": 1, "lon": 2.5}, "place": {"city": "P",'
            ' "country": "FR"}, "ratio": 2, "tags": ["a"]}'
        )
        assert kwargs["unit"] is Unit.FAHRENHEIT
        assert kwargs["days"] == 3 and type(kwargs["days"]) is int
        assert kwargs["window"] == Window(days=2)
        assert kwargs["pair"] == (1, 2)
        assert kwargs["point"] == Point(1.0, 2.5)
        assert kwargs["place"] == {"city": "P", "country": "FR"}
        assert kwargs["ratio"] == 2.0 and type(kwargs["ratio"]) is float

    def test_positional_only(self) -> None:
        """A positional-only parameter is passed by position."""

        def f(a: int, /, b: int) -> int:
            """F."""
            return a - b

        sig = signature_of(f, "f")
        args, kwargs = sig.bind({"a": 5, "b": 2})
        assert f(*args, **kwargs) == 3

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ("nope", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            ("{}", "missing required argument(s) city"),
            ('{"city": "a", "zip": 1}', "unexpected argument(s) zip"),
            ('{"city": 1}', "city: expected a string, got 1"),
            ('{"city": "a", "days": 2.5}', "days: expected an integer, got 2.5"),
            ('{"city": "a", "days": true}', "days: expected an integer"),
            ('{"city": "a", "unit": "kelvin"}', 'unit: expected one of "celsius", "fahrenheit"'),
            ('{"city": "a", "window": {"days": "x"}}', 'window.days: expected an integer, got "x"'),
            ('{"city": "a", "window": {}}', "window: missing key(s) days"),
            ('{"city": "a", "tags": ["x", 2]}', "tags[1]: expected a string"),
            ('{"city": "a", "pair": [1]}', "pair: expected a list of 2 items"),
            ('{"city": "a", "hot": "yes"}', "hot: expected true or false"),
        ],
    )
    def test_readable_errors(self, raw: str, message: str) -> None:
        """Arguments that do not fit raise ArgumentsError with a message the model can act on."""
        with pytest.raises(ArgumentsError) as info:
            self.bind(raw)
        assert message in str(info.value)

    def test_empty_arguments_are_none(self) -> None:
        """An empty arguments text is no arguments."""
        assert parse_arguments("  ") == {}

    def test_jsonable(self) -> None:
        """Results in JSON terms: enums as values, attrs/dataclasses as objects, tuples as lists."""
        value = {"u": Unit.CELSIUS, "w": Window(3), "p": Point(1, 2), "t": (1, 2)}
        assert json.loads(json.dumps(jsonable(value))) == {
            "u": "celsius",
            "w": {"days": 3, "hourly": False},
            "p": {"lat": 1, "lon": 2},
            "t": [1, 2],
        }


def feed(state: SessionState, *frames: dict[str, Any]) -> Any:
    """Decode each frame as the reader does and give it to the state; the last effects."""
    effects = None
    for frame in frames:
        effects = state.receive(decode(json.dumps(frame)), 1.0)
    return effects


def call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


class TestToolBook:
    """The state's decision: which calls of a finished reply are due, and the reply's handle."""

    def state(self) -> SessionState:
        state = SessionState()
        feed(state, {"type": "session.created", "session": {"id": "s"}})
        state.tools = ToolBook()
        return state

    def test_calls_of_a_completed_reply_are_due(self) -> None:
        """response.done's function_call items are due, in order; the handle waits for them."""
        state = self.state()
        track, _ = state.track_response("e1", 0.0)
        feed(state, {"type": "response.created", "response": {"id": "r1"}})
        effects = feed(
            state,
            {
                "type": "response.done",
                "response": {
                    "id": "r1",
                    "status": "completed",
                    "output": [call_item("c1", "a", "{}"), call_item("c2", "b", '{"x": 1}')],
                },
            },
        )
        assert effects.tool_calls == (
            DueCall("a", "c1", "{}", "r1"),
            DueCall("b", "c2", '{"x": 1}', "r1"),
        )
        assert track.tools_pending
        state.tools_ran("r1", ("record",), None)
        assert not track.tools_pending and track.tool_calls == ("record",)

    def test_argument_events_stand_in_for_missing_items(self) -> None:
        """With no items in response.done, the arguments' done events say which calls are due."""
        state = self.state()
        done_args = {
            "type": "response.function_call_arguments.done",
            "response_id": "r1",
            "call_id": "c1",
            "name": "a",
            "arguments": "{}",
        }
        effects = feed(
            state,
            done_args,
            {"type": "response.done", "response": {"id": "r1", "status": "completed"}},
        )
        assert effects.tool_calls == (DueCall("a", "c1", "{}", "r1"),)

    @pytest.mark.parametrize("status", ["cancelled", "failed", "incomplete"])
    def test_unfinished_reply_calls_nothing(self, status: str) -> None:
        """A reply that did not complete has no due calls (the model did not finish asking)."""
        state = self.state()
        effects = feed(
            state,
            {
                "type": "response.done",
                "response": {"id": "r1", "status": status, "output": [call_item("c", "a", "")]},
            },
        )
        assert effects is None or not effects.tool_calls

    def test_no_book_no_calls(self) -> None:
        """Without a registered tool (no book) the state leaves function calls to the program."""
        state = SessionState()
        effects = feed(
            state,
            {
                "type": "response.done",
                "response": {
                    "id": "r1",
                    "status": "completed",
                    "output": [call_item("c", "a", "")],
                },
            },
        )
        assert effects is None

    def test_end_fails_the_waiting_handle(self) -> None:
        """A session that ends before the tools ran fails the handle waiting for them."""
        state = self.state()
        track, request = state.track_response("e1", 0.0)
        assert request.kind is RequestKind.RESPONSE
        feed(
            state,
            {"type": "response.created", "response": {"id": "r1"}},
            {
                "type": "response.done",
                "response": {
                    "id": "r1",
                    "status": "completed",
                    "output": [call_item("c", "a", "")],
                },
            },
        )
        state.ended(1006, "", None)
        assert not track.tools_pending
        assert isinstance(track.error, ds.TransportError)


@pytest.mark.parametrize(
    ("family", "model", "takes"),
    [
        (ModelFamily.OMNI, ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME, True),
        (ModelFamily.OMNI_V38, ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME, True),
        (ModelFamily.QWEN_AUDIO, ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS, True),
        (ModelFamily.OMNI, ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, False),
        (ModelFamily.LIVETRANSLATE, ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, False),
    ],
)
def test_which_families_take_tools(family: ModelFamily, model: str, takes: bool) -> None:
    """Omni 3.5+, Omni 3.8 and Qwen-Audio take tools; LiveTranslate and the legacy models do not."""
    assert takes_tools(family, model) is takes

    def test_mixed_reply_hears_the_answer_to_the_output_that_completes_it(self) -> None:
        """Registered and hand-declared calls: the answer to whichever output comes last is the one heard."""
        from dashscope_sync._core.state import ResponseTrack

        done = decode(
            json.dumps(
                {
                    "type": "response.done",
                    "response": {
                        "id": "r1",
                        "status": "completed",
                        "output": [call_item("c1", "ours", "{}"), call_item("c2", "theirs", "{}")],
                    },
                }
            )
        )

        def new_track() -> ResponseTrack:
            return ResponseTrack(None, 0.0)

        # The program's output first: its answer is silenced, the library's is left to follow.
        book = ToolBook(lambda name: name == "ours")
        book.receive(done)
        assert book.program_output("c2") and book.answer_owed
        plan = book.plan("r1", 1, False, True, new_track)
        assert plan.answers == [None] and plan.follow_up is None and not book.answer_owed
        # The library's output first: its answer is silenced, the program's is heard.
        book = ToolBook(lambda name: name == "ours")
        book.receive(done)
        plan = book.plan("r1", 1, False, True, new_track)
        (silenced,) = plan.answers
        assert silenced is not None and silenced.silent and not silenced.cancel_wanted
        assert not book.program_output("c2") and not book.answer_owed
