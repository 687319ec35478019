"""The embedded event log: the default backend, local files under a data dir, stdlib only.

One pod writes (it holds ``data_dir/LOCK``); any number of readers, in any process, read.
Appends are fsynced before they return; a torn tail is dropped on open, corrupt records in
the middle are skipped and counted. See ``log`` for the layout, ``segment`` for the format.
"""

from schedulerx.backends.embedded.log import CompactionStats, EmbeddedLog, EmbeddedReader
from schedulerx.backends.embedded.session import EmbeddedSession

__all__ = ["CompactionStats", "EmbeddedLog", "EmbeddedReader", "EmbeddedSession"]
