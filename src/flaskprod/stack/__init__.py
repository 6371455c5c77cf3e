"""flaskprod.stack."""
