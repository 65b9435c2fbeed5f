"""Reference RMA coordinator: speaks the deployed coordinator's worker API (Part 1) exactly, plus
the advertised extension (Part 2: tokens, assignment resource with ETag and long poll)."""

__version__ = "0.5.0"
