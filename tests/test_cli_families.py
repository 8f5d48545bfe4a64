"""The command line with every family: ``talk --model`` and ``translate``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync._cli import main as _cli
from dashscope_sync.testing import LocalRealtimeServer

from .test_families import FAMILY_OF_MODEL

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = _cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def key(server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The local server's key as DASHSCOPE_API_KEY, and no workspace or region."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key)
    monkeypatch.delenv("DASHSCOPE_WORKSPACE", raising=False)
    monkeypatch.delenv("DASHSCOPE_REGION", raising=False)
    return server.api_key


@pytest.mark.usefixtures("key")
@pytest.mark.parametrize("model", list(FAMILY_OF_MODEL))
def test_talk_every_model(server: LocalRealtimeServer, tmp_path: Path, model: str) -> None:
    """talk --model holds a turn with every documented model, in its own family's way."""
    output = tmp_path / "reply.wav"
    code, out, err = run(
        "talk", str(ds.sample_wav_path()), "--model", model, "--url", server.url,
        "--output", str(output), "--fast",
    )  # fmt: skip
    assert code == 0, err
    assert "assistant: This is a simulated" in out
    assert output.stat().st_size > 44
    voices = [f["session"].get("voice") for f in server.received if f["type"] == "session.update"]
    assert voices == [None]  # the family's default voice is kept


@pytest.mark.usefixtures("key")
def test_omni_38_without_workspace_names_the_option() -> None:
    """A workspace-only model with no workspace names --workspace, not Client(workspace=...)."""
    code, _, err = run(
        "talk", str(ds.sample_wav_path()), "--model", ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME
    )
    assert code == _cli.EXIT_USAGE
    assert "argument --workspace:" in err and "DASHSCOPE_WORKSPACE" in err
    assert "Client(" not in err and "region=..." not in err
    assert "ModelFamily" not in err


@pytest.mark.usefixtures("key")
@pytest.mark.parametrize(
    "model",
    [ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME, ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME],
)
def test_translate(server: LocalRealtimeServer, tmp_path: Path, model: str) -> None:
    """translate streams a LiveTranslate session, prints the translation and writes its audio."""
    output = tmp_path / "translated.wav"
    code, out, err = run(
        "translate", str(ds.sample_wav_path()), "--to", "ja", "--model", model,
        "--url", server.url, "--output", str(output), "--fast",
    )  # fmt: skip
    assert code == 0, err
    assert "translation (ja): This is a simulated translation into ja" in out
    assert ds.load_wav(output, sample_rate=24000)
    sent = server.wait_for_received("session.update")["session"]
    assert sent["translation"] == {"language": "ja"}
    assert not [f for f in server.received if f["type"] == "response.create"]


@pytest.mark.usefixtures("key")
def test_translate_text_only(server: LocalRealtimeServer, tmp_path: Path) -> None:
    """translate --text-only prints the translation and writes no audio."""
    output = tmp_path / "translated.wav"
    code, out, err = run(
        "translate", str(ds.sample_wav_path()), "--to", "en", "--url", server.url,
        "--output", str(output), "--fast", "--text-only",
    )  # fmt: skip
    assert code == 0, err
    assert "simulated translation into en" in out
    assert not output.exists()


@pytest.mark.usefixtures("key")
def test_translate_refuses_other_families(server: LocalRealtimeServer) -> None:
    """translate with a model that is not LiveTranslate is a usage error naming the family."""
    code, _, err = run(
        "translate", str(ds.sample_wav_path()), "--to", "en", "--url", server.url,
        "--model", ds.MODEL_QWEN3_OMNI_FLASH_REALTIME,
    )  # fmt: skip
    assert code == _cli.EXIT_USAGE
    assert "LiveTranslate" in err and "is a Qwen-Omni model" in err
    assert "ModelFamily" not in err


def test_translate_needs_target() -> None:
    """translate without --to is a usage error."""
    with pytest.raises(SystemExit) as info:
        run("translate", "x.wav")
    assert info.value.code == 2


@pytest.mark.usefixtures("key")
@pytest.mark.parametrize("command", ["talk", "translate"])
@pytest.mark.parametrize(
    "model",
    [ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME, ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME],
)
def test_livetranslate_audio_ends_with_finish_not_commit(
    server: LocalRealtimeServer, tmp_path: Path, command: str, model: str
) -> None:
    """On LiveTranslate the audio ends with session.finish, as its docs say; no commit is sent."""
    extra = ["--to", "en"] if command == "translate" else []
    code, out, err = run(
        command, str(ds.sample_wav_path()), *extra, "--model", model, "--url", server.url,
        "--output", str(tmp_path / "o.wav"), "--fast",
    )  # fmt: skip
    assert code == 0, err
    assert "simulated translation" in out
    sent = [f["type"] for f in server.received]
    assert "input_audio_buffer.commit" not in sent
    assert sent[-1] == "session.finish", sent
