"""Checks of the audio and image a user passes in, before anything is sent.

A Python user holds audio as ``bytes`` from a file, a ``bytearray`` filled by
a microphone callback, an ``array('h')`` or a numpy ``int16`` array. All of
them are accepted as they are, without a copy where the buffer protocol
allows; the usual mistakes (float samples, a whole WAV file, a stereo array)
are refused with a message that says how to fix them.

Wrong Python types raise `ConfigTypeError` (a ``TypeError``), wrong values
`ConfigError` (a ``ValueError``); both are `ConfigError`.
"""

from __future__ import annotations

import sys

from .._errors import ConfigError, ConfigTypeError

__all__ = ["image_buffer", "pcm16_buffer"]

# struct-syntax formats of buffers whose items are single bytes.
_BYTE_FORMATS = frozenset({"B", "b", "c", "<B", ">B", "=B", "@B", "<b", ">b", "=b", "@b"})
# Formats of 16-bit signed samples stored little-endian.
_INT16_LE = frozenset({"<h"} | ({"h", "=h", "@h"} if sys.byteorder == "little" else set()))
_INT16_BE = frozenset({">h", "!h"} | ({"h", "=h", "@h"} if sys.byteorder == "big" else set()))
_FLOAT_FORMATS = frozenset(
    prefix + code for prefix in ("", "<", ">", "=", "@", "!") for code in ("e", "f", "d")
)

_AUDIO_TYPES = "bytes, bytearray, memoryview, array('h') or a numpy int16 array"
_FLOAT_HINT = (
    "the service takes 16-bit integer PCM, not float samples: convert floats in "
    "[-1, 1] with `(x * 32767).astype('<i2')`"
)


def _view(value: object, what: str, expected: str) -> memoryview:
    if isinstance(value, str):
        raise ConfigTypeError(
            f"{what} must be {expected}, got str (open files in binary mode, 'rb')"
        )
    try:
        return memoryview(value)  # type: ignore[arg-type]  # anything with the buffer protocol
    except TypeError:
        raise ConfigTypeError(f"{what} must be {expected}, got {type(value).__name__}") from None


def _flat_bytes(view: memoryview, what: str) -> memoryview:
    """``view`` as a flat memoryview of bytes, sharing its memory."""
    if not view.c_contiguous:
        raise ConfigTypeError(
            f"{what} must be a C-contiguous buffer (a slice with a step, or a column of "
            f"an array, is not): copy it first, e.g. `numpy.ascontiguousarray(x)` or `bytes(x)`"
        )
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def pcm16_buffer(
    value: object, what: str = "audio", *, allow_empty: bool = False
) -> bytes | memoryview:
    """Check audio for ``input_audio_buffer.append``: mono 16-bit little-endian PCM.

    Accepts any C-contiguous buffer of bytes or of int16 samples: ``bytes``,
    ``bytearray``, ``memoryview``, ``array('h')``, a numpy ``int16`` array
    (1-D, or one column like ``(n, 1)``).

    Args:
        value: The audio.
        what: How messages name it.
        allow_empty: Take no samples at all (else a `ConfigError`).

    Returns:
        ``value`` itself if it is ``bytes``; otherwise a byte-format
        (``'B'``) memoryview of the caller's buffer, with no copy. The view
        pins the buffer (a ``bytearray`` cannot be resized while it lives):
        use it at once and let it go.

    Raises:
        ConfigTypeError: Not a buffer (a ``str``, a list...), float samples
            (the message says how to convert), samples of another integer
            type or byte order, or a buffer that is not C-contiguous.
        ConfigError: Empty, an odd number of bytes (not whole 16-bit
            samples), more than one channel, or a WAV file's bytes (a
            ``RIFF``/``WAVE`` header: read the file with `load_wav`).
    """
    if isinstance(value, bytes):
        data: bytes | memoryview = value
    else:
        view = _view(value, what, f"16-bit PCM bytes ({_AUDIO_TYPES})")
        fmt = view.format
        if fmt in _FLOAT_FORMATS:
            raise ConfigTypeError(f"{what} holds float samples ({fmt!r}); {_FLOAT_HINT}")
        if fmt.lstrip("<>=@!") == "b":
            raise ConfigTypeError(
                f"{what} holds signed 8-bit samples (int8); the service takes 16-bit PCM: "
                "convert with `x.astype('<i2') * 256`"
            )
        if fmt in _INT16_BE:
            raise ConfigTypeError(
                f"{what} holds big-endian 16-bit samples; the service takes little-endian: "
                "convert with `x.astype('<i2')`"
            )
        if fmt not in _BYTE_FORMATS and fmt not in _INT16_LE:
            raise ConfigTypeError(
                f"{what} must hold bytes or int16 samples, got items of format {fmt!r} "
                f"({view.itemsize} bytes each): convert to 16-bit PCM, e.g. `x.astype('<i2')` "
                "if the values fit"
            )
        if sum(1 for n in view.shape or () if n != 1) > 1:
            raise ConfigError(
                f"{what} must be mono, got an array of shape {view.shape}: pass one channel "
                "(e.g. `x[:, 0].copy()`) or a mono mix"
            )
        data = _flat_bytes(view, what)
    size = len(data)
    if not size:
        if allow_empty:
            return data
        raise ConfigError(f"{what} is empty")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        raise ConfigError(
            f"{what} starts with a RIFF/WAVE header: that is a WAV file, not raw PCM "
            "(the header would be sent as sound); read it with `ds.load_wav(path)`"
        )
    if size % 2:
        raise ConfigError(
            f"{what} must be whole 16-bit samples (an even number of bytes), got {size}"
        )
    return data


_IMAGE_SIGNATURES = (
    (b"\x89PNG", "a PNG"),
    (b"GIF8", "a GIF"),
    (b"BM", "a BMP"),
    (b"II*\x00", "a TIFF"),
    (b"MM\x00*", "a TIFF"),
)


def image_buffer(value: object, what: str = "image") -> bytes | memoryview:
    """Check an image for ``input_image_buffer.append``: JPEG bytes.

    Accepts any C-contiguous buffer of bytes (``bytes``, ``bytearray``,
    ``memoryview``, a numpy ``uint8`` array of the file's bytes).

    Returns:
        ``value`` itself if it is ``bytes``, else a byte-format memoryview
        of it (no copy; see `pcm16_buffer`).

    Raises:
        ConfigTypeError: Not a buffer of bytes (a ``str`` path, a list, an
            array of pixels of another item type...).
        ConfigError: Empty, or not JPEG (the service takes only JPEG; the
            message names PNG, GIF, BMP, TIFF and WebP when it sees them).
    """
    if isinstance(value, bytes):
        data: bytes | memoryview = value
    else:
        view = _view(value, what, "JPEG bytes (bytes, bytearray or memoryview)")
        if view.format not in _BYTE_FORMATS:
            raise ConfigTypeError(
                f"{what} must be the bytes of a JPEG file, got items of format "
                f"{view.format!r}: encode pixels as JPEG first"
            )
        data = _flat_bytes(view, what)
    if not len(data):
        raise ConfigError(f"{what} is empty")
    if data[:2] != b"\xff\xd8":
        head = bytes(data[:12])
        kind = next((name for sig, name in _IMAGE_SIGNATURES if head.startswith(sig)), None)
        if kind is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            kind = "a WebP"
        seen = f"got {kind} image" if kind else f"got data starting with {head[:4]!r}"
        raise ConfigError(
            f"{what} must be JPEG bytes (the service accepts only JPEG), {seen}: convert it, "
            "e.g. with Pillow `img.convert('RGB').save(buffer, 'JPEG')`"
        )
    return data
