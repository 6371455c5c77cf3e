"""flaskprod.runtime: what runs inside the user's app (``flaskprod.Production``).

Imports only Flask and Werkzeug; SQLAlchemy, redis, sentry-sdk and python-dotenv are
imported when the app uses them, and the command line never. Public helpers:

- :class:`flaskprod.runtime.production.Production` (re-exported as ``flaskprod.Production``)
- :func:`flaskprod.runtime.request_id.current_request_id`
- :func:`flaskprod.runtime.redis.redis_client`
- :func:`flaskprod.runtime.fork.after_fork` (gunicorn ``post_fork``) and
  :func:`flaskprod.runtime.database.dispose_engines`
- :class:`flaskprod.runtime.config.StartupRefused` (exit status 3)
- :func:`flaskprod.runtime.errors.handle_http_error` (the JSON/HTML error responses)

The reference of every setting is ``docs/runtime.md``.
"""
