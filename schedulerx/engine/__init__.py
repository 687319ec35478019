"""The pod: ownership, planning loop, claims, execution and shutdown."""
