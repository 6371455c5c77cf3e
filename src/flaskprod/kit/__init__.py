"""flaskprod.kit."""
