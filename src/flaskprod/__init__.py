"""flaskprod: take any Flask app to production, and prove it is ready.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from flaskprod.runtime.production import Production

__version__ = "0.1.0"

__all__ = ["Production", "__version__"]
