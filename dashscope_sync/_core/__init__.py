"""The session core: the pure state machine, the mailbox, the handler dispatcher,
the I/O shell over the WebSocket transport, the `SessionCore` that wires them, and
the `Response` handles it gives out."""
