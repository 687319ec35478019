"""Ports: one Protocol per module. Adapters live in schedulerx.backends."""
