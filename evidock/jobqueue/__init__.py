"""The PostgreSQL job queue (procrastinate) in the catalog's own database.

``[jobs] queue = "postgres"`` turns renditions into jobs (:mod:`.tasks`) that any number
of ``evidock worker`` processes (:mod:`.worker`) on any number of machines run; the
station service, the dock daemon and the scheduler only queue them (:mod:`.renditions`).
procrastinate is imported only here, and only when a queue is configured: a SQLite
station never loads it.
"""
