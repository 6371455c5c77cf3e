"""The deployment spec: model, loading and validation, detection of a Flask project."""
