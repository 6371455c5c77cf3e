"""flaskprod.check.report."""
