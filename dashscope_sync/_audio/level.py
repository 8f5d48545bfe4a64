"""Is a PCM16 chunk audible? The level test behind ``first_audible_delay``.

A reply's first audio frames are often silence (a model clears its throat
with zeros before the voice starts), so "first audio" and "first sound a
listener hears" differ; pipecat and the trackers PEERS.md cites measure the
second. The test is the chunk's peak against a fixed threshold: cheap (two C
loops over the samples, no numpy), and the session runs it only until the
first audible chunk of each response.
"""

from __future__ import annotations

import sys
from array import array
from typing import Final

__all__ = ["AUDIBLE_PEAK", "audible"]

#: The smallest peak (of 32767) that counts as sound: -50 dBFS, below any
#: voice yet above the dither and rounding noise a codec leaves in "silence".
AUDIBLE_PEAK: Final = 104

_BIG_ENDIAN: Final = sys.byteorder == "big"


def audible(pcm: bytes | bytearray | memoryview, threshold: int = AUDIBLE_PEAK) -> bool:
    """Whether little-endian mono PCM16 ``pcm`` has a sample at or above ``threshold`` in size.

    A trailing odd byte (not a whole sample) is ignored.
    """
    usable = len(pcm) & ~1
    if not usable:
        return False
    samples = array("h")
    samples.frombytes(pcm[:usable] if usable != len(pcm) else pcm)
    if _BIG_ENDIAN:
        samples.byteswap()
    return max(samples) >= threshold or min(samples) <= -threshold
