"""The conversation layer: tools, transcripts, recordings and latency, built on the sessions."""
