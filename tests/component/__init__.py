"""The component tier: the whole agent in-process, on an in-memory engine and virtual time."""
