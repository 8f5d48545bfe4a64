"""Test support for DashScope realtime clients: a local protocol server.

:class:`LocalRealtimeServer` is a real WebSocket server on loopback that
speaks the Qwen-Omni realtime protocol, with simulated (and clearly labelled)
replies and knobs for the failure modes a client must survive: deterministic
server VAD with barge-in (on by default), echo replies
(``reply_audio="echo"``), the temporary-key endpoint ``POST /api/v1/tokens``
on the same port, and scripted, failing or cut-short responses. A
Qwen-TTS-Realtime model in the URL gets that family's dialect: text in, a
simulated voice out (PCM and WAV; MP3 and Opus with ``soundfile``). The official
``dashscope`` SDK can talk to it as well as this package's client. It needs
the ``websockets`` package (an optional extra of ``dashscope_sync``).

Speech recognition: a ``qwen3-asr-flash-realtime*`` model in the URL gets a
Qwen-ASR-Realtime session (VAD turns with interim ``text``/``stash`` events
and a final transcript each, manual commit, ``session.finish``; see
:class:`LocalRealtimeServer`). It transcribes the bundled demo clip as its
known words and audio made by :func:`spoken_pcm16` as the text hidden in it
(:func:`spoken_text` reads it back); anything else gets a placeholder that
describes the audio.

Replay: :meth:`LocalRealtimeServer.replay` answers clients with a recorded
session (``frames.jsonl``, read by :class:`Recording`) instead of the
simulator, matching their frames by type and order; the :class:`Replay` it
returns records the first :class:`ReplayDivergence`.

Example:
    >>> from dashscope_sync.testing import LocalRealtimeServer
    >>> with LocalRealtimeServer() as server:
    ...     server.url.endswith("/api-ws/v1/realtime")
    True
"""

try:
    from ._asr import spoken_pcm16, spoken_text
    from ._audio import pcm16_peak_dbfs, resample_pcm16, speech_like_pcm16
    from ._connection import LocalConnection, ReplySpec
    from ._handshake import HandshakeRecord, RequestHeaders
    from ._http import TemporaryToken
    from ._recording import RecordedFrame, Recording
    from ._replay import Replay, ReplayDivergence
    from ._server import LocalRealtimeServer
except ImportError as exc:
    # websockets is an optional extra; say how to get it, not just its name.
    if exc.name is None or exc.name.split(".")[0] != "websockets":
        raise
    raise ImportError(
        "dashscope_sync.testing needs the websockets package (15 or newer): "
        "pip install 'dashscope-sync[testing]' "
        "(from a source checkout: pip install -e '.[testing]')",
        name=exc.name,
    ) from exc

__all__ = [
    "HandshakeRecord",
    "LocalConnection",
    "LocalRealtimeServer",
    "RecordedFrame",
    "Recording",
    "Replay",
    "ReplayDivergence",
    "ReplySpec",
    "RequestHeaders",
    "TemporaryToken",
    "pcm16_peak_dbfs",
    "resample_pcm16",
    "speech_like_pcm16",
    "spoken_pcm16",
    "spoken_text",
]
