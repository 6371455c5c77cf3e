"""The fault suite: a real ``flaskprod up`` stack of the shop under a bounded load,
one fault at a time, with figures (``python -m bench.faults``; see __main__.py)."""
