"""The Kafka backend: the only package that imports ``kafka``.

State topic (compacted, ``cleanup.policy=compact``) holds validated facts; its partition of
every record is ``murmur2(command_id) mod N``. Requests from the CLI and other systems go to the
``<topic>-requests`` inbox topic (key = command id, so a stock producer lands on the same
partition number), where the owning pod validates them. Each state partition is written only
through a transactional producer whose ``transactional_id`` is derived from the partition, so a
new owner's ``init_transactions()`` fences the previous one; readers are ``read_committed``.
"""

from schedulerx.backends.kafka.log import KafkaLog
from schedulerx.backends.kafka.settings import KafkaSettings

__all__ = ["KafkaLog", "KafkaSettings"]
