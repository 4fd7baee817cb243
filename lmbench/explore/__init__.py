"""``lmbench explore``: a local page and JSON API over the finished models of a run folder.

:mod:`discovery` finds the models, :mod:`service` answers questions about them in plain Python (next-token
distributions, n-gram back-off paths, Transformer attention, samples), :mod:`app` puts that behind HTTP
(FastAPI, the ``explore`` extra) and serves the page in ``static/``.
"""

from lmbench.explore.discovery import FinishedModel, discover_runs
from lmbench.explore.service import ExploreInputError, Explorer, ExploreRangeError, ModelUnavailable

__all__ = [
    "ExploreInputError",
    "ExploreRangeError",
    "Explorer",
    "FinishedModel",
    "ModelUnavailable",
    "discover_runs",
]
