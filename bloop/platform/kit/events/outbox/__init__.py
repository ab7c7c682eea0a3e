from bloop.platform.kit.events.outbox.port import OutboxStore, Pending, entry_of
from bloop.platform.kit.events.outbox.relay import OutboxRelay

__all__ = ["OutboxRelay", "OutboxStore", "Pending", "entry_of"]
