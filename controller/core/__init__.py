"""Pure values and decisions: stdlib only, no I/O, no threads, no clock reads."""
