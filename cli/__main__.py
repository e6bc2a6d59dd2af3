"""``python -m cli``: the ``chokepoint`` command without the installed script."""

import sys

from cli import main

sys.exit(main())
