"""flaskprod.runtime."""
