"""flaskprod.check."""
