"""The package version, in a module of its own.

Why not in ``__init__``: modules inside the package (the HTTP client puts it
in its User-Agent) would otherwise import the package root, an import that
runs back up through every layer the root re-exports.
"""

__version__ = "0.1.0"
