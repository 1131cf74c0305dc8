"""``python -m margin_async.cli``: the same as the ``margin-async`` console script."""

from __future__ import annotations

import sys

from margin_async.cli import main

if __name__ == "__main__":
    sys.exit(main())
