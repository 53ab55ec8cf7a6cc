"""The server's stores, one implementation each on SQLAlchemy Core for SQLite and PostgreSQL.

- ``engine``: the one way to reach a database (timeouts, SQLite locking, psycopg 3 for PostgreSQL);
- ``migrations``: versioned migrations per store, applied under a lock at open;
- ``call_records``: call records (``server.calls.record``);
- ``delivery_ledger``: one row per proactive prompt, shared by the scheduler and every node.
"""
