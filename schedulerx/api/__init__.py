"""The public API objects (re-exported from ``schedulerx``)."""
