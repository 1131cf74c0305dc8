"""``python -m margin_async.sync sync --db URL (--once | --follow) ...``: the ``sync``
command of ``margin-async``, runnable alone."""

import sys

from margin_async.sync._command import main

if __name__ == "__main__":
    sys.exit(main())
