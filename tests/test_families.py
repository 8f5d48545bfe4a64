"""Model families: detection from the model name, per-family facts, the workspace-only refusal."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync._wire.dialects import check_host, family_for
from dashscope_sync._wire.families import FinishRule, default_voice, finish_rule, needs_workspace
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

F = ds.ModelFamily

#: Every model name of MODEL_FAMILIES.md §1, with the family the official SDK picks.
FAMILY_OF_MODEL = {
    ds.MODEL_QWEN_OMNI_TURBO_REALTIME: F.OMNI,
    ds.MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST: F.OMNI,
    ds.MODEL_QWEN_OMNI_TURBO_REALTIME_2025_05_08: F.OMNI,
    ds.MODEL_QWEN3_OMNI_FLASH_REALTIME: F.OMNI,
    ds.MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_09_15: F.OMNI,
    ds.MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_12_01: F.OMNI,
    ds.MODEL_QWEN3_5_OMNI_PLUS_REALTIME: F.OMNI,
    ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME: F.OMNI,
    ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME: F.OMNI_V38,
    ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME: F.LIVETRANSLATE,
    ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME: F.LIVETRANSLATE,
    ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME_2026_05_19: F.LIVETRANSLATE,
    ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME: F.LIVETRANSLATE_V38,
    ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS: F.QWEN_AUDIO,
    ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH: F.QWEN_AUDIO,
    ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS: F.QWEN_AUDIO,
    ds.MODEL_QWEN_AUDIO_3_1_REALTIME_FLASH: F.QWEN_AUDIO,
}


class TestModelNames:
    """The model constants are exactly the names of MODEL_FAMILIES.md §1."""

    def test_spelling(self) -> None:
        """Each new model constant has the documented spelling."""
        assert {
            ds.MODEL_QWEN3_5_OMNI_PLUS_REALTIME,
            ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME,
            ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME,
            ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME,
            ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME,
            ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME_2026_05_19,
            ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME,
            ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS,
            ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH,
            ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS,
            ds.MODEL_QWEN_AUDIO_3_1_REALTIME_FLASH,
        } == {
            "qwen3.5-omni-plus-realtime",
            "qwen3.5-omni-flash-realtime",
            "qwen3.8-omni-flash-realtime",
            "qwen3-livetranslate-flash-realtime",
            "qwen3.5-livetranslate-flash-realtime",
            "qwen3.5-livetranslate-flash-realtime-2026-05-19",
            "qwen3.8-livetranslate-flash-realtime",
            "qwen-audio-3.0-realtime-plus",
            "qwen-audio-3.0-realtime-flash",
            "qwen-audio-3.1-realtime-plus",
            "qwen-audio-3.1-realtime-flash",
        }

    def test_no_invented_snapshots(self) -> None:
        """No dated constant exists for a family whose snapshots no source shows."""
        names = [n for n in ds.__all__ if n.startswith("MODEL_")]
        assert not [n for n in names if ("3_8" in n or "3_5_OMNI" in n) and "20" in n]
        assert not [n for n in names if "AUDIO" in n and "20" in n]

    def test_voices(self) -> None:
        """The default voices and voice lists are the documented ones."""
        assert ds.VOICE_TINA == "Tina"
        assert ds.VOICE_CLONE == "default"
        assert ds.VOICE_LONGANQIAN == "longanqian"
        assert ds.VOICE_LONGANQIAN_V3_1 == "longanqian_v3.1"
        assert ds.VOICE_LONGANQIAN in ds.VOICES_QWEN_AUDIO_3_0
        assert ds.VOICE_LONGANQIAN_V3_1 in ds.VOICES_QWEN_AUDIO_3_1_PLUS
        assert ds.VOICE_TINA in ds.VOICES_QWEN3_8_OMNI_FLASH


class TestDetection:
    """The family from the model name, by the official SDK's prefix rules."""

    @pytest.mark.parametrize(("model", "family"), list(FAMILY_OF_MODEL.items()))
    def test_every_documented_model(self, model: str, family: ds.ModelFamily) -> None:
        """Every model of §1 maps to its family."""
        assert family_for(ds.RealtimeConfig(model=model)) is family

    @pytest.mark.parametrize(
        "model",
        ["my-new-model", "qwen4-omni-realtime"],
    )
    def test_unknown_names_get_legacy_omni(self, model: str) -> None:
        """Names the library does not know get the Omni dialect (ASR and TTS have their own)."""
        assert family_for(ds.RealtimeConfig(model=model)) is F.OMNI

    def test_prefix_not_substring(self) -> None:
        """Only a prefix decides: a name that merely contains a family's prefix is legacy Omni."""
        assert family_for(ds.RealtimeConfig(model="x-qwen-audio-3.0")) is F.OMNI

    def test_forced_family(self) -> None:
        """RealtimeConfig(family=...) forces a family, as an enum or its value."""
        config = ds.RealtimeConfig(model="qwen9-omni-realtime", family=F.OMNI_V38)
        assert family_for(config) is F.OMNI_V38
        assert ds.RealtimeConfig(model="m", family="qwen_audio").family is F.QWEN_AUDIO  # type: ignore[arg-type]

    def test_bad_family(self) -> None:
        """A family that is not a ModelFamily is a ConfigError listing the families."""
        with pytest.raises(ds.ConfigError, match="livetranslate_v38"):
            ds.RealtimeConfig(family="klingon")  # type: ignore[arg-type]

    def test_values_are_the_sdk_dialect_names(self) -> None:
        """The conversation families' values are the official SDK 2.0.2's dialect names
        (the SDK has none for the speech families, which come after them)."""
        assert [f.value for f in F][:5] == [
            "omni",
            "omni_v38",
            "livetranslate",
            "livetranslate_v38",
            "qwen_audio",
        ]


class TestFacts:
    """Per-family rules, socket-free."""

    @pytest.mark.parametrize(
        ("model", "rule"),
        [
            (ds.MODEL_QWEN_OMNI_TURBO_REALTIME, FinishRule.WAIT_FINISHED),
            (ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, FinishRule.WAIT_FINISHED),
            (ds.MODEL_QWEN3_5_OMNI_PLUS_REALTIME, FinishRule.UNSUPPORTED),
            (ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME, FinishRule.UNSUPPORTED),
            (ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME, FinishRule.SEND_ONLY),
            (ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, FinishRule.WAIT_FINISHED),
            (ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME, FinishRule.WAIT_FINISHED),
            (ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS, FinishRule.UNSUPPORTED),
        ],
    )
    def test_finish_rule(self, model: str, rule: FinishRule) -> None:
        """finish_session() follows MODEL_FAMILIES.md §6 per family (and Omni 3.5 apart)."""
        assert finish_rule(family_for(ds.RealtimeConfig(model=model)), model) is rule

    @pytest.mark.parametrize(
        ("model", "voice"),
        [
            (ds.MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST, "Chelsie"),
            (ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, "Cherry"),
            (ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME, "Tina"),
            (ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME, "Tina"),
            (ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME, "Cherry"),
            (ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME, None),
            (ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH, "longanqian"),
            (ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS, "longanqian_v3.1"),
            (ds.MODEL_QWEN_AUDIO_3_1_REALTIME_FLASH, None),
            ("unknown-model", None),
        ],
    )
    def test_default_voice(self, model: str, voice: str | None) -> None:
        """The default voice is the documented one, or None where no source states one."""
        assert default_voice(model) == voice

    def test_only_omni_38_needs_the_workspace_host(self) -> None:
        """Only Omni 3.8 is documented as refused on the legacy hosts."""
        assert [f for f in F if needs_workspace(f)] == [F.OMNI_V38]


class _NetworkWatch:
    """Records socket connects and name look-ups while armed (an audit hook, no mock)."""

    def __init__(self) -> None:
        self.armed = False
        self.seen: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[object, ...]) -> None:
        if self.armed and event in ("socket.connect", "socket.getaddrinfo"):
            self.seen.append(event)


_WATCH = _NetworkWatch()


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No workspace or region from the environment."""
    monkeypatch.delenv("DASHSCOPE_WORKSPACE", raising=False)
    monkeypatch.delenv("DASHSCOPE_REGION", raising=False)
    yield


class TestWorkspaceRefusal:
    """A family that needs the workspace host, connected without one."""

    @pytest.mark.usefixtures("no_env")
    @pytest.mark.parametrize("region", ["cn-beijing", "ap-southeast-1"])
    def test_refused_before_any_network(self, region: str) -> None:
        """Omni 3.8 on a legacy host fails at connect() with what to set, before any socket use."""
        client = ds.Client("k", region=region)
        _WATCH.seen.clear()
        _WATCH.armed = True
        try:
            with pytest.raises(ds.ConfigError) as info:
                client.realtime.connect(model=ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME)
        finally:
            _WATCH.armed = False
        assert _WATCH.seen == []
        message = str(info.value)
        assert "workspace" in message
        assert "DASHSCOPE_WORKSPACE" in message
        assert "Qwen-Omni 3.8" in message and "ModelFamily" not in message

    @pytest.mark.usefixtures("no_env")
    def test_refused_on_explicit_legacy_base_url(self) -> None:
        """Passing the legacy host as base_url is refused the same way."""
        client = ds.Client("k", base_url=ds.DEFAULT_REALTIME_URL_INTL)
        with pytest.raises(ds.ConfigError, match="workspace"):
            client.realtime.connect(ds.RealtimeConfig(model=ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME))

    @pytest.mark.usefixtures("no_env")
    def test_forced_family_is_refused_too(self) -> None:
        """A model forced into the Omni 3.8 family needs the workspace host as well."""
        client = ds.Client("k")
        with pytest.raises(ds.ConfigError, match="workspace"):
            client.realtime.connect(ds.RealtimeConfig(model="next-omni", family=F.OMNI_V38))

    def test_workspace_host_passes(self) -> None:
        """On the workspace host, or any host the user chose, Omni 3.8 is not refused."""
        config = ds.RealtimeConfig(model=ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME)
        check_host(config, "wss://ws1.cn-beijing.maas.aliyuncs.com/api-ws/v1/realtime")
        check_host(config, "wss://gateway.example.com/api-ws/v1/realtime")

    @pytest.mark.parametrize(
        "model",
        [m for m, f in FAMILY_OF_MODEL.items() if f is not F.OMNI_V38],
    )
    def test_other_families_not_refused(self, model: str) -> None:
        """Every other family may use the legacy host."""
        check_host(ds.RealtimeConfig(model=model), ds.DEFAULT_REALTIME_URL)


@pytest.mark.parametrize(("model", "family"), list(FAMILY_OF_MODEL.items()))
def test_session_family(server: LocalRealtimeServer, model: str, family: ds.ModelFamily) -> None:
    """session.family shows the family of the model the session talks to."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=model) as session:
        assert session.family is family
        assert session.model == model


def test_docs_family_table() -> None:
    """The regions page's family table names every family and every documented model; the README's every family."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    landing = readme.split("## Model families", 1)[1].split("\n## ", 1)[0]
    for family in F:
        assert f"`{family.name}`" in landing, family
    page = (root / "docs" / "guides" / "regions.md").read_text(encoding="utf-8")
    section = page.split("## Model families", 1)[1].split("\n## ", 1)[0]
    for family in F:
        assert f"| `{family.name}`" in section, family
    # Each model, in full or (snapshots, Qwen-Audio variants) as the table shortens it.
    for model in FAMILY_OF_MODEL:
        base, _, date = model.partition("-20")
        short = f"-20{date}" if date else model.replace("qwen-audio", "")
        if model.endswith("-latest"):
            base, short = model.removesuffix("-latest"), "-latest"
        assert model in section or (
            (base in section or "qwen-audio" in model) and (short in section)
        ), model
