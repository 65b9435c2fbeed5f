"""The coordinator's HTTP API as FastAPI routers: the worker API (Parts 1 and 2) and the admin
API. Handlers that only touch SQLite are plain `def` (FastAPI runs them in its threadpool, so
the event loop never blocks on the database); the long poll and the handlers that wake it are
`async` and hand their database calls to the threadpool. The heartbeat, the hot path, is
`async` with its short statements inline: measured, the threadpool hop cost more than the
statements (docs/adr/0005-one-sqlite-connection.md).
"""
