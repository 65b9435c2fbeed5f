"""The reconcile loop and what it drives: executor, image puller, image GC, crash-loop back-off,
event watcher.
"""
