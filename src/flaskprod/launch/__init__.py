"""How a project starts its app, read from its own files: one reader for every layer.

Launch commands (Procfile lines, boot scripts, Dockerfile ``CMD``/``ENTRYPOINT``,
compose ``command``, supervisor ``command=``, systemd ``ExecStart``) are shell text.
``init`` (:mod:`flaskprod.spec`) reads them to find the app target and app server;
``check`` (:mod:`flaskprod.check`) reads them to judge the deployment. Both read them
through this package, so they agree on what a project runs; it imports neither.

- :mod:`.discover`: which of a project's files are deployment files, by kind;
- :mod:`.dockerfile`, :mod:`.compose`, :mod:`.supervisor`, :mod:`.systemd`: the
  parsers of those files (``check`` caches them per run);
- :mod:`.shell`: shell text -> the simple commands it runs;
- :mod:`.launchers`: the commands a set of launcher files runs, with their environment;
- :mod:`.gunicorn`, :mod:`.granian`: an app server's command line and config file;
- :mod:`.targets`: the app target a command serves;
- :mod:`.scripts`: the project files a command names (a boot script, a config module).
"""
