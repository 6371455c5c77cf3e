"""How a project starts its app, read from its own files: one reader for every layer.

Launch commands (Procfile lines, boot scripts, Dockerfile ``CMD``/``ENTRYPOINT``,
compose ``command``, supervisor ``command=``, systemd ``ExecStart``) are shell text.
``init`` (:mod:`flaskprod.spec`) reads them to find the app target and app server;
``check`` (:mod:`flaskprod.check`) reads them to judge the deployment. Both read them
through this package, so they agree on what a project runs; it imports neither.
"""
