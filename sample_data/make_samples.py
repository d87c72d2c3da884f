"""Regenerate the sample lists in this folder from ``mobizon_batch.samples``.

python sample_data/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

from mobizon_batch.samples import write_samples

if __name__ == "__main__":
    for path in write_samples(Path(__file__).resolve().parent).values():
        print(path)
