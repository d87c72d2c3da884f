"""mobizon-batch: send SMS in bulk through the Mobizon HTTP API, never twice."""

from __future__ import annotations

__version__ = "0.1.0"
