"""lmbench: train n-gram, recurrent and Transformer language models on one corpus and compare them."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__`` on first use: importlib.metadata costs a tenth of a second that ``lmbench score``
    should not pay at every start."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("lmbench")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
