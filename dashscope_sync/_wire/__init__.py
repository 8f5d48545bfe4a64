"""The wire, with no I/O: the server events as typed records, the codec (frames in,
events out), the configuration records, each model family's dialect and facts, and
the regions that resolve where the frames go."""
