"""Audio: files, checks of the audio a user passes in, resampling, the speaker and
microphone, echo cancellation, paced feeds, and attaching devices to a session.

numpy, soxr and sounddevice are imported on first use, never with the package."""
