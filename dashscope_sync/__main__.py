"""``python -m dashscope_sync``: the same as the ``dashscope-sync`` command."""

import sys

from ._cli import main

sys.exit(main())
