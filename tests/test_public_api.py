"""The public surface of ``dashscope_sync``: ``__all__``, module names, constants, imports."""

from __future__ import annotations
import __future__

import inspect
import subprocess
import sys
import types
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync import _constants


def _public_names() -> set[str]:
    """Public names bound in the package namespace, except submodules and ``__future__`` flags."""
    return {
        name
        for name, value in vars(ds).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        # `from __future__ import annotations` binds `annotations`; it is not API.
        and value is not __future__.annotations
    }


class TestAll:
    """``dashscope_sync.__all__``."""

    def test_sorted(self) -> None:
        """__all__ is in plain sorted() order."""
        assert ds.__all__ == sorted(ds.__all__)

    def test_no_duplicates(self) -> None:
        """__all__ lists each name once."""
        assert len(ds.__all__) == len(set(ds.__all__))

    def test_matches_public_namespace(self) -> None:
        """__all__ (besides __version__) is exactly the public names defined in the package."""
        assert set(ds.__all__) - {"__version__"} == _public_names()

    def test_version_exported(self) -> None:
        """__version__ is exported and is a non-empty string."""
        assert "__version__" in ds.__all__
        assert isinstance(ds.__version__, str) and ds.__version__

    @pytest.mark.parametrize("name", ds.__all__)
    def test_name_resolves(self, name: str) -> None:
        """Every name of __all__ resolves on the package."""
        assert hasattr(ds, name)

    def test_star_import(self) -> None:
        """``from dashscope_sync import *`` binds exactly __all__."""
        namespace: dict[str, object] = {}
        exec("from dashscope_sync import *", namespace)
        assert set(namespace) - {"__builtins__"} == set(ds.__all__)

    @pytest.mark.parametrize("name", [n for n in ds.__all__ if isinstance(getattr(ds, n), type)])
    def test_classes_live_in_package(self, name: str) -> None:
        """Every exported class says it lives in ``dashscope_sync``."""
        cls = getattr(ds, name)
        assert cls.__module__ == "dashscope_sync"
        assert cls.__name__ == name


class TestConstants:
    """Endpoint and model constants."""

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("DEFAULT_REALTIME_URL", "wss://dashscope.aliyuncs.com/api-ws/v1/realtime"),
            ("DEFAULT_REALTIME_URL_INTL", "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime"),
            ("DEFAULT_HTTP_BASE_URL", "https://dashscope.aliyuncs.com/api/v1"),
            ("DEFAULT_HTTP_BASE_URL_INTL", "https://dashscope-intl.aliyuncs.com/api/v1"),
            ("DEFAULT_MODEL", "qwen-omni-turbo-realtime-latest"),
            ("MODEL_QWEN_OMNI_TURBO_REALTIME", "qwen-omni-turbo-realtime"),
            ("MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST", "qwen-omni-turbo-realtime-latest"),
            ("MODEL_QWEN_OMNI_TURBO_REALTIME_2025_05_08", "qwen-omni-turbo-realtime-2025-05-08"),
            ("MODEL_QWEN3_OMNI_FLASH_REALTIME", "qwen3-omni-flash-realtime"),
            ("MODEL_QWEN3_OMNI_FLASH_REALTIME_LATEST", "qwen3-omni-flash-realtime-latest"),
            ("MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_09_15", "qwen3-omni-flash-realtime-2025-09-15"),
            ("MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_12_01", "qwen3-omni-flash-realtime-2025-12-01"),
            ("API_KEY_ENV", "DASHSCOPE_API_KEY"),
            ("INPUT_SAMPLE_RATE", 16_000),
            ("OUTPUT_SAMPLE_RATE", 24_000),
            ("TRANSCRIPTION_MODEL_GUMMY", "gummy-realtime-v1"),
            ("VAD_SERVER", "server_vad"),
        ],
    )
    def test_value(self, name: str, value: object) -> None:
        """The constant exists on the package with the documented value."""
        assert name in ds.__all__
        assert getattr(ds, name) == value

    def test_flash_latest_flagged_as_undocumented(self) -> None:
        """The comment on MODEL_QWEN3_OMNI_FLASH_REALTIME_LATEST says PROTOCOL.md lists no such model."""
        lines = inspect.getsource(_constants).splitlines()
        index = next(
            i for i, line in enumerate(lines)
            if line.startswith("MODEL_QWEN3_OMNI_FLASH_REALTIME_LATEST")
        )  # fmt: skip
        comment: list[str] = []
        for line in reversed(lines[:index]):
            if not line.startswith("#"):
                break
            comment.append(line)
        assert "PROTOCOL.md lists no such model" in " ".join(comment)

    def test_modalities(self) -> None:
        """The modality constants are the two accepted combinations."""
        assert list(ds.MODALITIES_TEXT) == ["text"]
        assert sorted(ds.MODALITIES_AUDIO) == ["audio", "text"]


class TestImportSideEffects:
    """Importing the package stays light."""

    def test_no_requests_or_testing_import(self) -> None:
        """``import dashscope_sync`` imports neither requests nor dashscope_sync.testing."""
        code = (
            "import sys, dashscope_sync; "
            "print('requests' in sys.modules, 'dashscope_sync.testing' in sys.modules)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
        )
        assert result.stdout.split() == ["False", "False"]

    def test_no_audio_extra_import(self) -> None:
        """``import dashscope_sync`` imports none of the [audio] extra (numpy, soxr, sounddevice, soundfile)."""
        code = (
            "import sys, dashscope_sync; "
            "print(*(m in sys.modules for m in ('numpy', 'soxr', 'sounddevice', 'soundfile')))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
        )
        assert result.stdout.split() == ["False"] * 4

    def test_base_install_reads_wav_without_the_extra(self, tmp_path: Path) -> None:
        """With the [audio] extra's modules blocked, load_audio and stream_file's reader still work on 16 kHz WAV."""
        path = tmp_path / "a.wav"
        path.write_bytes(ds.pcm16_to_wav(bytes(3200), 16000))
        code = (
            "import sys; sys.modules.update(numpy=None, soxr=None, sounddevice=None, soundfile=None); "
            f"import dashscope_sync as ds; print(len(ds.load_audio({str(path)!r})))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
        )
        assert result.stdout.split() == ["3200"]
