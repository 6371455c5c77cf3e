"""flaskprod.ops."""
