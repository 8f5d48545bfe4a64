"""Pure tests of the audio and image input checks (``pcm16_buffer``, ``image_buffer``)
and of the encoders they feed."""

from __future__ import annotations

import array
import base64
import json
from typing import Any

import numpy as np
import pytest

import dashscope_sync as ds
from dashscope_sync._fmt import seconds
from dashscope_sync._wire.codec import encode_audio_append, encode_image_append

PCM = b"\x01\x00\x02\x00\xff\x7f\x00\x80"  # four int16 samples: 1, 2, 32767, -32768
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16 + b"\xff\xd9"


def as_bytes(data: bytes | memoryview) -> bytes:
    return data if isinstance(data, bytes) else data.tobytes()


class TestPcm16Accepts:
    """pcm16_buffer: the buffers a Python user holds audio in."""

    def test_bytes_returned_as_is(self) -> None:
        """bytes come back as the same object."""
        assert ds.pcm16_buffer(PCM) is PCM

    @pytest.mark.parametrize(
        "make",
        [
            bytearray,
            memoryview,
            lambda b: array.array("h", b),
            lambda b: np.frombuffer(b, dtype="<i2").copy(),
            lambda b: np.frombuffer(b, dtype=np.int16).reshape(-1, 1).copy(),  # one column
            lambda b: np.frombuffer(b, dtype=np.uint8).copy(),
        ],
        ids=["bytearray", "memoryview", "array-h", "numpy-int16", "numpy-n-by-1", "numpy-uint8"],
    )
    def test_buffers_become_byte_views(self, make: Any) -> None:
        """bytearray, memoryview, array('h') and numpy arrays give a flat 'B' memoryview."""
        data = ds.pcm16_buffer(make(PCM))
        assert isinstance(data, memoryview)
        assert data.format == "B" and data.ndim == 1
        assert data.tobytes() == PCM

    def test_no_copy(self) -> None:
        """The view shares the caller's memory: a later write to the array shows in it."""
        samples = np.zeros(4, dtype=np.int16)
        view = ds.pcm16_buffer(samples)
        samples[0] = 0x0102
        assert bytes(view[:2]) == b"\x02\x01"

    def test_encoders_take_the_view(self) -> None:
        """encode_audio_append and encode_image_append encode a memoryview like bytes."""
        frame = json.loads(encode_audio_append("e1", ds.pcm16_buffer(array.array("h", PCM))))
        assert base64.b64decode(frame["audio"]) == PCM
        frame = json.loads(encode_image_append("e2", ds.image_buffer(bytearray(JPEG))))
        assert base64.b64decode(frame["image"]) == JPEG


class TestPcm16Refuses:
    """pcm16_buffer: the usual mistakes, each with a message that says what to do."""

    @pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
    def test_float_samples(self, dtype: str) -> None:
        """A float array is a TypeError saying how to convert it."""
        with pytest.raises(TypeError, match=r"\(x \* 32767\)\.astype\('<i2'\)") as info:
            ds.pcm16_buffer(np.zeros(4, dtype=dtype))
        assert isinstance(info.value, ds.ConfigError)  # except ConfigError still catches it

    def test_float_array_module(self) -> None:
        """An array('f') is refused the same way."""
        with pytest.raises(ds.ConfigTypeError, match="float samples"):
            ds.pcm16_buffer(array.array("f", [0.0, 0.5]))

    def test_wav_file_bytes(self) -> None:
        """A buffer starting with a RIFF/WAVE header is refused, pointing at load_wav."""
        wav = ds.pcm16_to_wav(PCM, 16000)
        with pytest.raises(ValueError, match="load_wav") as info:
            ds.pcm16_buffer(wav)
        assert isinstance(info.value, ds.ConfigError)
        with pytest.raises(ds.ConfigError, match="RIFF/WAVE"):
            ds.pcm16_buffer(bytearray(wav))

    @pytest.mark.parametrize("value", [b"", bytearray(), np.zeros(0, dtype=np.int16)])
    def test_empty(self, value: object) -> None:
        """Empty audio is a ValueError."""
        with pytest.raises(ValueError, match="audio is empty"):
            ds.pcm16_buffer(value)

    def test_odd_length(self) -> None:
        """An odd number of bytes is a ValueError naming the count."""
        with pytest.raises(ValueError, match=r"even number of bytes.*3"):
            ds.pcm16_buffer(b"\x00\x00\x00")

    @pytest.mark.parametrize("value", ["abc", [1, 2], 3, None, {"a": 1}])
    def test_wrong_python_type(self, value: object) -> None:
        """Values that are not buffers are a TypeError (and a ConfigError)."""
        with pytest.raises(ds.ConfigTypeError, match="16-bit PCM bytes") as info:
            ds.pcm16_buffer(value)
        assert isinstance(info.value, TypeError) and not isinstance(info.value, ds.UsageError)

    def test_other_integer_types(self) -> None:
        """int32 samples are a TypeError that names the item format."""
        with pytest.raises(ds.ConfigTypeError, match="format 'i'"):
            ds.pcm16_buffer(np.zeros(4, dtype=np.int32))

    def test_int8_samples(self) -> None:
        """An int8 array is 8-bit audio, not bytes of 16-bit PCM: a TypeError."""
        with pytest.raises(ds.ConfigTypeError, match="8-bit"):
            ds.pcm16_buffer(np.zeros(4, dtype=np.int8))

    def test_big_endian(self) -> None:
        """Big-endian int16 samples are a TypeError saying how to convert them."""
        with pytest.raises(ds.ConfigTypeError, match="big-endian"):
            ds.pcm16_buffer(np.zeros(4, dtype=">i2"))

    def test_stereo(self) -> None:
        """A two-channel array is a ValueError asking for one channel."""
        with pytest.raises(ds.ConfigError, match=r"mono.*\(4, 2\)"):
            ds.pcm16_buffer(np.zeros((4, 2), dtype=np.int16))

    def test_not_contiguous(self) -> None:
        """A strided view (one column of a stereo array) is a TypeError suggesting a copy."""
        with pytest.raises(ds.ConfigTypeError, match="C-contiguous"):
            ds.pcm16_buffer(np.zeros((4, 2), dtype=np.int16)[:, 0])

    def test_names_the_argument(self) -> None:
        """The message names the argument it was given as."""
        with pytest.raises(ds.ConfigError, match=r"^pcm is empty"):
            ds.pcm16_buffer(b"", "pcm")


class TestImageBuffer:
    """image_buffer: JPEG bytes in any byte buffer."""

    def test_accepts(self) -> None:
        """bytes come back as is; a bytearray or uint8 array as a byte view."""
        assert ds.image_buffer(JPEG) is JPEG
        assert as_bytes(ds.image_buffer(bytearray(JPEG))) == JPEG
        assert as_bytes(ds.image_buffer(np.frombuffer(JPEG, dtype=np.uint8))) == JPEG

    @pytest.mark.parametrize(
        ("data", "kind"),
        [(b"\x89PNG\r\n\x1a\n" + b"\0" * 8, "a PNG"), (b"GIF89a" + b"\0" * 8, "a GIF"),
         (b"RIFF\0\0\0\0WEBPVP8 ", "a WebP"), (b"hello world!", "b'hell'")],
    )  # fmt: skip
    def test_not_jpeg(self, data: bytes, kind: str) -> None:
        """Other formats are a ValueError that says what was seen and how to convert."""
        with pytest.raises(ValueError, match="only JPEG") as info:
            ds.image_buffer(data)
        assert kind in str(info.value) and "Pillow" in str(info.value)

    def test_empty(self) -> None:
        """An empty image is a ValueError."""
        with pytest.raises(ds.ConfigError, match="image is empty"):
            ds.image_buffer(b"")

    @pytest.mark.parametrize("value", ["photo.jpg", np.zeros((2, 2), dtype=np.float32)])
    def test_wrong_type(self, value: object) -> None:
        """A path string or an array of pixels is a TypeError."""
        with pytest.raises(ds.ConfigTypeError):
            ds.image_buffer(value)


class TestErrorClass:
    def test_config_type_error_is_both(self) -> None:
        """ConfigTypeError is a ConfigError, a ValueError (via ConfigError) and a TypeError."""
        assert issubclass(ds.ConfigTypeError, ds.ConfigError)
        assert issubclass(ds.ConfigTypeError, TypeError)
        with pytest.raises(ds.ConfigError):
            raise ds.ConfigTypeError("x")


class TestSeconds:
    @pytest.mark.parametrize(
        ("value", "text"),
        [(1.4999397950000457, "1.5 s"), (30.0, "30 s"), (0.0123, "0.012 s"), (0.009291, "0.009 s"),
         (0.00758, "0.008 s"), (0.035, "0.035 s"), (0.0002, "0.0002 s"),
         (123.456, "123 s"), (0.00001, "0.00001 s"), (0, "0 s"), (-2.25, "-2.25 s")],
    )  # fmt: skip
    def test_rounds(self, value: float, text: str) -> None:
        """Durations in messages are rounded to the millisecond (whole seconds from 100 s)."""
        assert seconds(value) == text
