"""lmbench: train n-gram, recurrent and Transformer language models on one corpus and compare them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lmbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
