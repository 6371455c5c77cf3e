"""flaskprod.check.rules."""
