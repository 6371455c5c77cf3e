"""flaskprod: take any Flask app to production, and prove it is ready.

The public API is what ``__all__`` lists; everything else is private and may change.
``Production`` is imported on first use, so that the command line (which never
needs it) does not pay for importing Flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flaskprod.runtime.production import Production

__version__ = "0.1.0"

__all__ = ["Production", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Production":
        from flaskprod.runtime.production import Production

        return Production
    raise AttributeError(f"module 'flaskprod' has no attribute {name!r}")
