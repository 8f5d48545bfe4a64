"""``python -m dashscope_sync``: the same as the ``dashscope-sync`` command."""

import sys

from ._cli.main import main

sys.exit(main())
