"""``python -m mobizon_batch`` runs the command line."""

from __future__ import annotations

import sys

from mobizon_batch.cli import main

sys.exit(main())
