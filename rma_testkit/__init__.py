"""Test kit (not shipped): fakes, the agent and coordinator as processes, manifests."""
