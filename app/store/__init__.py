"""Where jobs, their metrics and sweeps are kept: SQLAlchemy over SQLite or PostgreSQL.

:mod:`.engine` opens the database, :mod:`.tables` defines it, :mod:`.migrations` brings it to the
newest revision, :mod:`.jobs` and :mod:`.sweeps` read and write it, :mod:`.query` builds the runs
table's filters and sort orders.
"""
