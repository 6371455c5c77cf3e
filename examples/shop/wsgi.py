"""WSGI entry point: ``gunicorn wsgi:app`` from examples/shop (or ``flask --app wsgi``)."""

from shop import create_app

app = create_app()
