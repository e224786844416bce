"""``python -m geodns`` is the ``geodns`` command."""

import sys

from .cli import main

sys.exit(main())
