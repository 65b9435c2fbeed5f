"""Everything that must match the coordinator: the spec schema, wire models and paths, capability
strings and the tier rule.
"""
