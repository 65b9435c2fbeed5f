"""The coordinator's HTTP API as FastAPI routers: the worker API (Parts 1 and 2) and the admin
API. Handlers that only touch SQLite are plain `def` (FastAPI runs them in its threadpool, so
the event loop never blocks on the database); the long poll and the handlers that wake it are
`async` and hand their database calls to the threadpool.
"""
