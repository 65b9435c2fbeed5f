"""Running it in production: logs, metrics, the health endpoint and its probes, signals, the
instance lock.
"""
