"""The worker's membership of a coordinator: registration and identity, heartbeat, assignment long
poll, the assignment source.
"""
