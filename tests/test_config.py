"""Pure tests of the configuration records: SessionUpdate, TurnDetection, RealtimeConfig..."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# open sessions; the others open none.

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "城市名"}},
    "required": ["location"],
}


class TestSessionUpdate:
    """SessionUpdate.as_dict sends only what was set."""

    def test_empty(self) -> None:
        """An empty SessionUpdate sends an empty session object."""
        assert ds.SessionUpdate().as_dict() == {}

    def test_only_set_fields_sent(self) -> None:
        """Only the fields that were set appear in the payload."""
        update = ds.SessionUpdate(voice="Cherry", instructions="Answer briefly.")
        assert update.as_dict() == {"voice": "Cherry", "instructions": "Answer briefly."}

    def test_turn_detection_none_is_null(self) -> None:
        """turn_detection=None is sent as JSON null (manual mode)."""
        payload = ds.SessionUpdate(turn_detection=None).as_dict()
        assert payload == {"turn_detection": None}
        assert json.dumps(payload) == '{"turn_detection": null}'

    def test_turn_detection_unset_omitted(self) -> None:
        """An unset turn_detection is left out (the server keeps VAD)."""
        assert "turn_detection" not in ds.SessionUpdate(voice="Cherry").as_dict()

    def test_turn_detection_record_nests(self) -> None:
        """A TurnDetection nests as a dict with type server_vad and only its set fields."""
        update = ds.SessionUpdate(
            turn_detection=ds.TurnDetection(threshold=0.2, silence_duration_ms=500)
        )
        assert update.as_dict() == {
            "turn_detection": {"type": "server_vad", "threshold": 0.2, "silence_duration_ms": 500}
        }

    def test_turn_detection_dict_passthrough(self) -> None:
        """A dict turn_detection is sent as given."""
        td = {"type": "semantic_vad", "create_response": False}
        assert ds.SessionUpdate(turn_detection=td).as_dict() == {"turn_detection": td}

    def test_turn_detection_all_fields(self) -> None:
        """Every TurnDetection field and its extra reach the wire."""
        td = ds.TurnDetection(
            type="semantic_vad",
            threshold=-1.0,
            prefix_padding_ms=300,
            silence_duration_ms=6000,
            create_response=False,
            interrupt_response=True,
            extra={"eagerness": "low"},
        )
        assert td.as_dict() == {
            "type": "semantic_vad",
            "threshold": -1.0,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 6000,
            "create_response": False,
            "interrupt_response": True,
            "eagerness": "low",
        }

    def test_input_audio_transcription_record(self) -> None:
        """InputAudioTranscription(model=...) nests as {"model": ...}."""
        update = ds.SessionUpdate(
            input_audio_transcription=ds.InputAudioTranscription(model="gummy-realtime-v1")
        )
        assert update.as_dict() == {"input_audio_transcription": {"model": "gummy-realtime-v1"}}

    def test_input_audio_transcription_extra(self) -> None:
        """InputAudioTranscription's extra fields are merged in."""
        iat = ds.InputAudioTranscription(model="gummy-realtime-v1", extra={"language": "zh"})
        assert iat.as_dict() == {"model": "gummy-realtime-v1", "language": "zh"}
        assert ds.InputAudioTranscription().as_dict() == {}

    def test_input_audio_transcription_none(self) -> None:
        """input_audio_transcription=None is sent as null (transcription off)."""
        assert ds.SessionUpdate(input_audio_transcription=None).as_dict() == {
            "input_audio_transcription": None
        }

    def test_input_audio_transcription_dict(self) -> None:
        """A dict input_audio_transcription passes through."""
        assert ds.SessionUpdate(input_audio_transcription={"model": "x"}).as_dict() == {
            "input_audio_transcription": {"model": "x"}
        }

    def test_function_tool_chat_completions_nesting(self) -> None:
        """A FunctionTool is sent in Chat-Completions nesting."""
        tool = ds.FunctionTool(
            name="get_current_weather", description="Get the weather", parameters=WEATHER_SCHEMA
        )
        assert ds.SessionUpdate(tools=[tool]).as_dict() == {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_current_weather",
                        "description": "Get the weather",
                        "parameters": WEATHER_SCHEMA,
                    },
                }
            ]
        }

    def test_function_tool_minimal(self) -> None:
        """A FunctionTool with only a name sends only the name."""
        assert ds.FunctionTool(name="ping").as_dict() == {
            "type": "function",
            "function": {"name": "ping"},
        }

    def test_tools_dicts_pass_through(self) -> None:
        """Tools given as dicts are sent as given, mixed with FunctionTool records."""
        raw_tool = {"type": "function", "function": {"name": "raw_fn", "parameters": {}}}
        update = ds.SessionUpdate(tools=[raw_tool, ds.FunctionTool(name="typed_fn")])
        assert update.as_dict()["tools"] == [
            raw_tool,
            {"type": "function", "function": {"name": "typed_fn"}},
        ]

    def test_empty_tools_list(self) -> None:
        """tools=[] is sent as an empty list."""
        assert ds.SessionUpdate(tools=[]).as_dict() == {"tools": []}

    def test_extra_merged_last(self) -> None:
        """extra adds fields and overrides same-named ones."""
        update = ds.SessionUpdate(voice="Cherry", extra={"voice": "Ethan", "video": {"x": 1}})
        assert update.as_dict() == {"voice": "Ethan", "video": {"x": 1}}

    def test_modalities_sent_as_list(self) -> None:
        """modalities are sent as a JSON list in the given order."""
        assert ds.SessionUpdate(modalities=("text", "audio")).as_dict() == {
            "modalities": ["text", "audio"]
        }
        assert ds.SessionUpdate(modalities=["audio", "text"]).as_dict() == {
            "modalities": ["audio", "text"]
        }
        assert ds.SessionUpdate(modalities=ds.MODALITIES_TEXT).as_dict() == {"modalities": ["text"]}

    def test_smooth_output_none_is_null(self) -> None:
        """smooth_output=None is sent as null (the model chooses)."""
        assert ds.SessionUpdate(smooth_output=None).as_dict() == {"smooth_output": None}

    def test_top_k_none_is_null(self) -> None:
        """top_k=None is sent as null (top-k off)."""
        assert ds.SessionUpdate(top_k=None).as_dict() == {"top_k": None}

    def test_every_documented_field(self) -> None:
        """Every session field of PROTOCOL.md 2.1 can be set and is sent as JSON-serialisable data."""
        update = ds.SessionUpdate(
            modalities=["text", "audio"],
            voice="Chelsie",
            instructions="You are …",
            input_audio_format="pcm16",
            output_audio_format="pcm24",
            input_audio_transcription=ds.InputAudioTranscription(model="gummy-realtime-v1"),
            turn_detection=ds.TurnDetection(threshold=0.5, silence_duration_ms=800),
            temperature=0.9,
            top_p=1.0,
            top_k=50,
            max_tokens=16384,
            repetition_penalty=1.05,
            presence_penalty=0.0,
            seed=1314,
            smooth_output=True,
            enable_search=True,
            search_options={"enable_source": True},
            tools=[ds.FunctionTool(name="get_current_weather", parameters=WEATHER_SCHEMA)],
            tool_choice="auto",
        )
        payload = update.as_dict()
        assert payload == {
            "modalities": ["text", "audio"],
            "voice": "Chelsie",
            "instructions": "You are …",
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm24",
            "input_audio_transcription": {"model": "gummy-realtime-v1"},
            "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 800},
            "temperature": 0.9,
            "top_p": 1.0,
            "top_k": 50,
            "max_tokens": 16384,
            "repetition_penalty": 1.05,
            "presence_penalty": 0.0,
            "seed": 1314,
            "smooth_output": True,
            "enable_search": True,
            "search_options": {"enable_source": True},
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_current_weather", "parameters": WEATHER_SCHEMA},
                }
            ],
            "tool_choice": "auto",
        }
        assert json.loads(json.dumps(payload)) == payload

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("temperature", 0),
            ("temperature", 1.99),
            ("top_p", 1),
            ("top_p", 0.01),
            ("top_k", 0),
            ("top_k", 101),
            ("max_tokens", 1),
            ("repetition_penalty", 0.5),
            ("presence_penalty", -2),
            ("presence_penalty", 2),
            ("seed", 0),
            ("seed", 2**31 - 1),
            ("smooth_output", False),
            ("enable_search", False),
            ("tool_choice", "none"),
            ("voice", "Eldric Sage"),
            ("voice", "my-cloned-voice"),
        ],
    )
    def test_boundary_values_accepted(self, field: str, value: Any) -> None:
        """Values at the documented range edges (and unknown voices) are accepted and sent."""
        assert ds.SessionUpdate(**{field: value}).as_dict() == {field: value}

    def test_as_dict_returns_fresh_copy(self) -> None:
        """Mutating the returned dict does not change the record."""
        update = ds.SessionUpdate(search_options={"enable_source": True}, modalities=["text"])
        payload = update.as_dict()
        payload["search_options"]["enable_source"] = False
        payload["modalities"].append("audio")
        assert update.as_dict() == {
            "search_options": {"enable_source": True},
            "modalities": ["text"],
        }

    def test_input_not_aliased(self) -> None:
        """Changing the caller's dicts or lists after construction does not change the record."""
        options = {"enable_source": True}
        modalities = ["text"]
        update = ds.SessionUpdate(search_options=options, modalities=modalities)
        options["enable_source"] = False
        modalities.append("audio")
        assert update.as_dict() == {
            "search_options": {"enable_source": True},
            "modalities": ["text"],
        }

    def test_frozen(self) -> None:
        """SessionUpdate and its nested records are frozen."""
        for record in (
            ds.SessionUpdate(),
            ds.TurnDetection(),
            ds.InputAudioTranscription(),
            ds.FunctionTool(name="f"),
        ):
            name = attrs.fields(type(record))[0].name
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                setattr(record, name, "x")


BAD_SESSION_VALUES: list[tuple[str, Any]] = [
    ("modalities", ["audio"]),
    ("modalities", "text"),
    ("modalities", ["video"]),
    ("modalities", []),
    ("modalities", ["text", "text"]),
    ("modalities", [1]),
    ("temperature", 2.0),
    ("temperature", -0.1),
    ("temperature", "hot"),
    ("temperature", True),
    ("temperature", math.nan),
    ("temperature", math.inf),
    ("top_p", 0),
    ("top_p", 1.5),
    ("top_k", -1),
    ("top_k", 1.5),
    ("max_tokens", 0),
    ("max_tokens", 10.0),
    ("seed", 2**31),
    ("seed", -1),
    ("presence_penalty", 3),
    ("repetition_penalty", 0),
    ("voice", 5),
    ("instructions", 5),
    ("input_audio_format", None),
    ("smooth_output", "yes"),
    ("enable_search", 1),
    ("search_options", "on"),
    ("tools", "x"),
    ("tools", {"type": "function"}),
    ("tools", [5]),
    ("tool_choice", 1),
    ("turn_detection", "on"),
    ("turn_detection", True),
    ("input_audio_transcription", "gummy-realtime-v1"),
    ("extra", {1: 2}),
]


class TestSessionUpdateValidation:
    """Bad values are ConfigErrors raised at construction."""

    @pytest.mark.parametrize(("field", "value"), BAD_SESSION_VALUES)
    def test_bad_value_raises_config_error(self, field: str, value: Any) -> None:
        """A bad value raises ConfigError (a ValueError and a DashScopeError) naming the field."""
        with pytest.raises(ds.ConfigError) as info:
            ds.SessionUpdate(**{field: value})
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, ds.DashScopeError)
        # "each tool must be ..." names the list field by its singular.
        assert field.removesuffix("s") in str(info.value)

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"threshold": 1.5}, "threshold"),
            ({"threshold": -1.01}, "threshold"),
            ({"silence_duration_ms": 100}, "silence_duration_ms"),
            ({"silence_duration_ms": 7000}, "silence_duration_ms"),
            ({"silence_duration_ms": 500.0}, "silence_duration_ms"),
            ({"prefix_padding_ms": -1}, "prefix_padding_ms"),
            ({"create_response": "yes"}, "create_response"),
            ({"type": None}, "type"),
        ],
    )
    def test_bad_turn_detection(self, kwargs: dict[str, Any], field: str) -> None:
        """A bad TurnDetection value raises ConfigError naming the field."""
        with pytest.raises(ds.ConfigError, match=field):
            ds.TurnDetection(**kwargs)

    @pytest.mark.parametrize("value", [200, 6000])
    def test_silence_duration_bounds_accepted(self, value: int) -> None:
        """silence_duration_ms accepts the documented bounds 200 and 6000."""
        assert ds.TurnDetection(silence_duration_ms=value).as_dict()["silence_duration_ms"] == value

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"name": ""},
            {"name": 5},
            {"name": "f", "description": 5},
            {"name": "f", "parameters": "{}"},
        ],
    )
    def test_bad_function_tool(self, kwargs: dict[str, Any]) -> None:
        """A FunctionTool with a bad name, description or parameters raises ConfigError."""
        with pytest.raises(ds.ConfigError):
            ds.FunctionTool(**kwargs)

    def test_bad_transcription_model(self) -> None:
        """A non-string transcription model raises ConfigError naming the field."""
        with pytest.raises(ds.ConfigError, match="model"):
            ds.InputAudioTranscription(model=5)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("value", "says", "not_said"),
        [
            (["audio"], "use ['text', 'audio']", "unknown"),
            (["video"], "unknown modality 'video'", "audio alone"),
            (["text", "video"], "unknown modality 'video'", "refused by the service"),
            ([], "modalities is empty", "refused by the service"),
            (["text", "text"], "'text' more than once", "refused by the service"),
        ],
    )
    def test_modalities_message_names_only_the_mistake(
        self, value: list[str], says: str, not_said: str
    ) -> None:
        """Each bad modalities value gets a message about its own mistake, and no other."""
        with pytest.raises(ds.ConfigError) as info:
            ds.SessionUpdate(modalities=value)  # type: ignore[arg-type]
        assert says in str(info.value)
        assert not_said not in str(info.value)
        assert not isinstance(info.value, TypeError)

    @pytest.mark.parametrize("value", ["text", "audio", 5, ["text", 1], {"text"}])
    def test_modalities_of_the_wrong_type_is_a_type_error(self, value: object) -> None:
        """A plain str (or a non-list, or non-str items) is a TypeError that is a ConfigError."""
        with pytest.raises(TypeError, match="modalities") as info:
            ds.SessionUpdate(modalities=value)  # type: ignore[arg-type]
        assert isinstance(info.value, ds.ConfigTypeError)
        if value == "text":
            assert "write ['text']" in str(info.value)

    def test_modalities_constants_are_accepted(self) -> None:
        """MODALITIES_TEXT and MODALITIES_AUDIO pass the check unchanged."""
        assert ds.SessionUpdate(modalities=ds.MODALITIES_TEXT).modalities == ("text",)
        assert ds.SessionUpdate(modalities=ds.MODALITIES_AUDIO).modalities == ("text", "audio")


class TestRealtimeConfig:
    """Per-session options."""

    def test_defaults(self) -> None:
        """The defaults are the documented model, 4096 buffered events and positive timeouts."""
        config = ds.RealtimeConfig()
        assert config.model == ds.DEFAULT_MODEL == "qwen-omni-turbo-realtime-latest"
        assert config.max_buffered_events == 4096
        assert config.handler_timeout == 5.0
        assert config.ping_interval == 20.0
        assert config.ping_timeout == 20.0
        assert config.close_timeout == 5.0
        assert config.request_timeout == 10.0
        assert dict(config.extra_headers) == {}

    def test_custom_values(self) -> None:
        """Valid custom values, None timeouts and 0 buffered events are accepted."""
        config = ds.RealtimeConfig(
            model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME,
            max_buffered_events=0,
            handler_timeout=None,
            ping_interval=None,
            ping_timeout=None,
            close_timeout=0.5,
            request_timeout=None,
            extra_headers={"X-Test": "1"},
        )
        assert config.model == "qwen3-omni-flash-realtime"
        assert config.max_buffered_events == 0
        assert config.ping_interval is None
        assert dict(config.extra_headers) == {"X-Test": "1"}

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("model", ""),
            ("model", "   "),
            ("model", None),
            ("max_buffered_events", -1),
            ("max_buffered_events", 1.5),
            ("max_buffered_events", True),
            ("ping_interval", 0),
            ("ping_interval", -5),
            ("ping_timeout", "10"),
            ("handler_timeout", -1),
            ("close_timeout", math.nan),
            ("request_timeout", 0),
            ("extra_headers", {"X-Test": 1}),
            ("extra_headers", "X-Test: 1"),
        ],
    )
    def test_bad_value(self, field: str, value: Any) -> None:
        """A bad option raises ConfigError naming the field."""
        with pytest.raises(ds.ConfigError, match=field):
            ds.RealtimeConfig(**{field: value})

    def test_frozen(self) -> None:
        """A RealtimeConfig cannot be modified."""
        config = ds.RealtimeConfig()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            config.model = "other"  # type: ignore[misc]

    def test_extra_headers_copied(self) -> None:
        """The config keeps its own copy of extra_headers."""
        headers = {"X-Test": "1"}
        config = ds.RealtimeConfig(extra_headers=headers)
        headers["X-Test"] = "2"
        assert dict(config.extra_headers) == {"X-Test": "1"}

    def test_evolve_validates(self) -> None:
        """attrs.evolve makes a changed copy and still validates."""
        config = ds.RealtimeConfig()
        other = attrs.evolve(config, model="qwen3-omni-flash-realtime")
        assert other.model == "qwen3-omni-flash-realtime"
        assert config.model == ds.DEFAULT_MODEL
        with pytest.raises(ds.ConfigError):
            attrs.evolve(config, max_buffered_events=-1)


class TestNotGiven:
    """The NOT_GIVEN sentinel."""

    def test_falsy(self) -> None:
        """NOT_GIVEN is falsy."""
        assert not ds.NOT_GIVEN
        assert bool(ds.NOT_GIVEN) is False

    def test_repr(self) -> None:
        """NOT_GIVEN reprs as NOT_GIVEN."""
        assert repr(ds.NOT_GIVEN) == "NOT_GIVEN"

    def test_type_and_identity(self) -> None:
        """NOT_GIVEN is the single NotGiven value and is not None."""
        assert isinstance(ds.NOT_GIVEN, ds.NotGiven)
        assert ds.NOT_GIVEN is not None
        assert list(ds.NotGiven) == [ds.NOT_GIVEN]

    def test_default_of_session_fields(self) -> None:
        """Unset SessionUpdate fields hold NOT_GIVEN."""
        update = ds.SessionUpdate()
        assert update.voice is ds.NOT_GIVEN
        assert update.turn_detection is ds.NOT_GIVEN

    def test_explicit_not_given_is_omitted(self) -> None:
        """Passing NOT_GIVEN explicitly leaves the field out."""
        assert ds.SessionUpdate(voice=ds.NOT_GIVEN, turn_detection=ds.NOT_GIVEN).as_dict() == {}


@pytest.mark.both_modes
def test_create_response_modalities_str_is_a_type_error(
    server: LocalRealtimeServer, session: ds.RealtimeSession
) -> None:
    """create_response(modalities="text") raises TypeError at run time and sends nothing."""
    with pytest.raises(TypeError, match="write \\['text'\\]"):
        session.create_response(modalities="text")
    session.send_raw({"type": "input_audio_buffer.clear"})
    server.wait_for_received("input_audio_buffer.clear")
    assert "response.create" not in [f["type"] for f in server.received]
