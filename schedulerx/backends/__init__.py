"""Adapters of the ports: ``embedded`` (local files, the default) and ``kafka``.

Only ``schedulerx.backends.kafka`` imports the kafka client; the embedded log is stdlib only.
"""
