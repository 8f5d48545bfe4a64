"""Run the examples as a user would: each script in a subprocess with ``--local``,
and the notebook cell by cell in a real Jupyter kernel."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import speech_like_pcm16

# Single mode (issue 18): the sessions here are opened by a child process (the
# command or the example run as a user runs it), which the test's ds.Reactor
# cannot reach, and no public option tells it to use one; the same code paths
# run in both modes in-process (test_cli*.py, test_docs_site.py).
pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SIMULATED = "This is a simulated reply from the local DashScope server."
#: What the local server says about the bundled 3.78 s question.
HEARD_SAMPLE = "I heard 3.78 seconds of audio"
#: A kernelspec of this name is made for the notebook test, pointing at this interpreter.
KERNEL_NAME = "dashscope-sync-test"

#: Every script in examples/; a test below keeps this list in step with the folder.
SCRIPTS = {
    "voice_turn_wav.py",
    "callbacks_streaming.py",
    "iterator_style.py",
    "text_chat.py",
    "image_and_audio.py",
    "function_calling.py",
    "temporary_key.py",
    "full_duplex.py",
    # One per model family (tests/test_examples_families.py).
    "omni38_workspace.py",
    "live_translation.py",
    "qwen_audio_smart_turn.py",
    "function_output.py",
    # Text to speech (tests/test_examples_speech.py).
    "speak.py",
    "speak_llm_stream.py",
    # Speech recognition (tests/test_examples_transcription.py).
    "transcribe_file.py",
    "transcribe_mic.py",
    # Many sessions on one reactor (tests/test_examples_many_sessions.py).
    "many_sessions.py",
}
#: Kept under 50 lines, so it has a compact --local switch of its own.
COMPACT = {"full_duplex.py"}


def run_example(
    script: str, *args: str, cwd: Path, local: bool = True, stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/<script> [--local] args...`` from ``cwd``, with no API key set."""
    env = {k: v for k, v in os.environ.items() if k != ds.API_KEY_ENV}
    command = [sys.executable, str(EXAMPLES / script), *(["--local"] if local else []), *args]
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """Check a run succeeded quietly (nothing on stderr: no warning, no logged error)."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr == "", proc.stderr
    return proc.stdout


def reply_wav(path: Path) -> bytes:
    """The PCM of a reply WAV the example wrote; it must be 24 kHz mono PCM16 and not empty."""
    pcm = ds.load_wav(path, sample_rate=ds.OUTPUT_SAMPLE_RATE)
    assert len(pcm) > ds.OUTPUT_SAMPLE_RATE  # the simulated reply lasts seconds
    return pcm


def test_every_example_is_run_and_listed() -> None:
    """Every script in examples/ is run by this file and listed with its command in the README."""
    assert {p.name for p in EXAMPLES.glob("*.py")} == SCRIPTS
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for name in [*SCRIPTS, "notebook.ipynb"]:
        assert f"examples/{name}" in readme, name


def test_connection_switch_is_the_same_everywhere() -> None:
    """The --local/--url block is word for word the same in every example that has it."""
    pattern = re.compile(
        r"^# Where to connect\..*?^        yield ds\.Client\(server\.api_key.*?$", re.M | re.S
    )
    blocks = {
        name: pattern.findall((EXAMPLES / name).read_text(encoding="utf-8"))
        for name in SCRIPTS - COMPACT
    }
    assert all(len(found) == 1 for found in blocks.values()), blocks
    assert len({found[0] for found in blocks.values()}) == 1


def test_full_duplex_under_40_lines_on_a_device(tmp_path: Path, audio_device: None) -> None:
    """full_duplex.py (under 50 lines) plays a reply through a real speaker with --local."""
    source = (EXAMPLES / "full_duplex.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) < 50
    out = ok(run_example("full_duplex.py", cwd=tmp_path))
    assert SIMULATED in out and "[completed]" in out


def test_voice_turn_wav_default_question(tmp_path: Path) -> None:
    """voice_turn_wav.py sends the bundled question and prints text, usage and timings."""
    out = ok(run_example("voice_turn_wav.py", "--output", "answer.wav", cwd=tmp_path))
    assert f"assistant: {SIMULATED} {HEARD_SAMPLE}." in out
    assert re.search(r"^usage: Usage\(total_tokens=\d+", out, re.M)
    assert re.search(
        r"^timings: first text [\d.]+ s, first audio [\d.]+ s, total [\d.]+ s$", out, re.M
    )
    pcm = reply_wav(tmp_path / "answer.wav")
    assert f"reply audio: {len(pcm) / 2 / ds.OUTPUT_SAMPLE_RATE:.2f} s" in out


def test_voice_turn_wav_given_file(tmp_path: Path) -> None:
    """voice_turn_wav.py sends the WAV file it is given, and writes reply.wav by default."""
    (tmp_path / "q.wav").write_bytes(ds.pcm16_to_wav(speech_like_pcm16(1.5), ds.INPUT_SAMPLE_RATE))
    out = ok(run_example("voice_turn_wav.py", "q.wav", cwd=tmp_path))
    assert "I heard 1.50 seconds of audio." in out
    reply_wav(tmp_path / "reply.wav")


def test_voice_turn_wav_refuses_wrong_format(tmp_path: Path) -> None:
    """A WAV at the wrong rate fails with exit 5 and a hint on converting it, before connecting."""
    (tmp_path / "q.wav").write_bytes(ds.pcm16_to_wav(b"\0\0" * 4800, 48_000))
    proc = run_example("voice_turn_wav.py", "q.wav", cwd=tmp_path)
    assert proc.returncode == 5
    assert "48000 Hz" in proc.stderr and "ffmpeg" in proc.stderr
    assert not (tmp_path / "reply.wav").exists()


def test_real_service_needs_a_key(tmp_path: Path) -> None:
    """Without --local and without DASHSCOPE_API_KEY an example says so and exits 3."""
    proc = run_example("voice_turn_wav.py", cwd=tmp_path, local=False)
    assert proc.returncode == 3
    assert "no API key" in proc.stderr and ds.API_KEY_ENV in proc.stderr


def test_callbacks_streaming(tmp_path: Path) -> None:
    """callbacks_streaming.py prints the transcript from its handler and saves the audio."""
    out = ok(run_example("callbacks_streaming.py", cwd=tmp_path))
    assert f"assistant: {SIMULATED} {HEARD_SAMPLE}.\n" in out
    pcm = reply_wav(tmp_path / "reply.wav")
    assert f"reply audio: {len(pcm) / 2 / ds.OUTPUT_SAMPLE_RATE:.2f} s" in out


def test_callbacks_streaming_handler_error(tmp_path: Path) -> None:
    """A handler that raises is logged once and surfaces as ds.HandlerError: exit 1."""
    proc = run_example("callbacks_streaming.py", "--break-handler", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert SIMULATED in proc.stdout  # the other handlers kept running
    assert "a handler failed: event handler" in proc.stderr
    assert "original exception: RuntimeError('this handler is broken on purpose" in proc.stderr
    assert proc.stderr.count("Traceback (most recent call last)") == 1  # the log record
    assert not (tmp_path / "reply.wav").exists()


def test_iterator_style(tmp_path: Path) -> None:
    """iterator_style.py dispatches the events of one turn in order and saves the audio."""
    out = ok(run_example("iterator_style.py", cwd=tmp_path))
    order = [
        "[session.created]",
        "[session.updated]",
        "[input_audio_buffer.committed]",
        "[response.created]",
        f"assistant: {SIMULATED} {HEARD_SAMPLE}.",
        "[response.done]",
    ]
    positions = [out.index(marker) for marker in order]
    assert positions == sorted(positions), out
    assert "[you said] [simulated transcript: 3.78 s of audio" in out
    assert "status completed" in out
    reply_wav(tmp_path / "reply.wav")


def test_text_chat_builtin_questions(tmp_path: Path) -> None:
    """text_chat.py without a terminal asks its three built-in questions, streaming each reply."""
    out = ok(run_example("text_chat.py", cwd=tmp_path))
    questions = re.findall(r"^you: (.+)$", out, re.M)
    assert len(questions) == 3
    for question in questions:
        assert f'assistant: {SIMULATED} I read your message: "{question}".' in out
    assert re.search(r"^tokens used: [1-9]\d*$", out, re.M)


def test_text_chat_given_questions(tmp_path: Path) -> None:
    """text_chat.py asks the questions given on its command line, one turn each."""
    out = ok(run_example("text_chat.py", "What is 2+2?", "And 3+3?", cwd=tmp_path))
    assert out.count("assistant: ") == 2
    assert 'I read your message: "What is 2+2?"' in out
    assert 'I read your message: "And 3+3?"' in out


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_text_chat_interactive(tmp_path: Path) -> None:
    """text_chat.py on a terminal reads questions until an empty line."""
    primary, secondary = os.openpty()
    try:
        os.write(primary, b"Hello from the keyboard\n\n")
        proc = run_example("text_chat.py", cwd=tmp_path, stdin=secondary)
    finally:
        os.close(primary)
        os.close(secondary)
    out = ok(proc)
    assert out.count("assistant: ") == 1
    assert 'I read your message: "Hello from the keyboard"' in out


def test_image_and_audio(tmp_path: Path) -> None:
    """image_and_audio.py sends audio then the bundled JPEG, step by step and with respond()."""
    out = ok(run_example("image_and_audio.py", cwd=tmp_path))
    assert out.count(f"{HEARD_SAMPLE} and saw 1 image.") == 2
    assert "turn 1 (step by step):" in out and "turn 2 (respond):" in out


def test_image_and_audio_shipped_jpeg_is_valid() -> None:
    """The bundled picture is a small baseline JPEG the session accepts."""
    jpeg = (EXAMPLES / "sunny_lake.jpg").read_bytes()
    assert jpeg.startswith(b"\xff\xd8\xff") and jpeg.endswith(b"\xff\xd9")
    assert len(jpeg) < 20_000


def test_function_calling(tmp_path: Path) -> None:
    """function_calling.py registers its tool; the library runs it and the answer uses the result."""
    out = ok(run_example("function_calling.py", cwd=tmp_path))
    call = re.search(
        r'^\[get_weather\((\{"city": "Hangzhou"\})\), id (call_\w+): (.+)\]$', out, re.M
    )
    assert call, out
    assert json.loads(call.group(3))["forecast"] == "light rain in the afternoon"
    # The final answer is about that call's output (the local server quotes it).
    assert re.search(
        rf'^assistant: .*I received the output of function call {call.group(2)}: "\{{"city":'
        rf'"Hangzhou","forecast":"light rain in the afternoon"',
        out,
        re.M,
    ), out


def test_function_calling_without_a_call(tmp_path: Path) -> None:
    """function_calling.py prints a plain answer when the model calls no tool."""
    out = ok(run_example("function_calling.py", "Just say hello.", cwd=tmp_path))
    assert "[get_weather" not in out
    assert f'assistant: {SIMULATED} I read your message: "Just say hello."' in out


def test_temporary_key(tmp_path: Path) -> None:
    """temporary_key.py mints a key, never prints it, and opens a session with it alone."""
    out = ok(run_example("temporary_key.py", "--expire", "120", cwd=tmp_path))
    expires = re.search(
        r"^temporary key TemporaryKey\(token='st-\*\*\*', .*: expires in (\d+) s$", out, re.M
    )
    assert expires, out
    assert 100 <= int(expires.group(1)) <= 121  # the expiry may be rounded to whole seconds
    assert "connected with the temporary key: session sess_" in out
    assert f"assistant: {SIMULATED} {HEARD_SAMPLE}." in out


# The notebook -------------------------------------------------------------------


@pytest.fixture
def kernel_name(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that runs this very interpreter, found ahead of any other of that name.

    ``ipykernel install`` writes ``sys.executable`` into the spec; installing it
    in a temporary prefix named by ``JUPYTER_PATH`` (searched first) needs no
    setup on the machine and changes nothing outside the test.
    """
    prefix = tmp_path_factory.mktemp("jupyter")  # not tmp_path: the notebook runs there
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--prefix",
            str(prefix),
            "--name",
            KERNEL_NAME,
        ],
        check=True,
        capture_output=True,
    )
    data = prefix / "share" / "jupyter"
    spec = json.loads((data / "kernels" / KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    monkeypatch.setenv("JUPYTER_PATH", str(data))
    return KERNEL_NAME


def _outputs(nb: Any, cell_id: str) -> list[Any]:
    [cell] = [c for c in nb.cells if c.get("id") == cell_id]
    return list(cell.outputs)


def _stdout(nb: Any, cell_id: str) -> str:
    return "".join(o.text for o in _outputs(nb, cell_id) if o.output_type == "stream")


def test_notebook(kernel_name: str, tmp_path: Path) -> None:
    """The notebook runs top to bottom in a real kernel, and its voice turn shows an audio player."""
    import nbclient  # the 'test' extra
    import nbformat

    nb = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    # As shipped: outputs cleared.
    assert all(
        not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code"
    )

    client = nbclient.NotebookClient(
        nb, timeout=60, kernel_name=kernel_name, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError at the first cell that fails

    for cell in nb.cells:
        if cell.cell_type == "code":
            assert all(o.output_type != "error" for o in cell.outputs), cell.id
    [voice] = [o for o in _outputs(nb, "respond-voice") if o.output_type == "execute_result"]
    html = voice.data["text/html"]
    assert f"{SIMULATED} {HEARD_SAMPLE}." in html
    assert '<audio controls src="data:audio/wav;base64,' in html
    [text] = [o for o in _outputs(nb, "respond-text") if o.output_type == "execute_result"]
    assert "I read your message: &quot;What can you help me with?&quot;" in text.data["text/html"]
    assert "I read your message" in _stdout(nb, "stream-text")
    # Printed from the handler thread, and still shown under the cell that ran it.
    assert f"{SIMULATED} {HEARD_SAMPLE}." in _stdout(nb, "callbacks")
    [closed] = [o for o in _outputs(nb, "close") if o.output_type == "execute_result"]
    assert closed.data["text/plain"] == "True"
