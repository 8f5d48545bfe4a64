"""The ``dashscope-sync`` command: ``main`` parses and runs it; a larger command has
a module of its own."""
