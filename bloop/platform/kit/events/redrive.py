"""Sends dead-lettered events back to the topic they came from, once what made them fail is
fixed (a bug, a missing concept, a store that refused them).

The event goes back as it was published, with its id: the group that dead-lettered it handles it
again (a dead-lettered event is never marked processed), and groups that handled it the first
time drop it as a duplicate. It arrives after the events published since, which handlers already
tolerate (projections keep the latest version, attempts land in their place). Redriving twice is
harmless for the same reason. The dead-letter topic itself is left as it is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from bloop.platform.kit.events.bus.port import DLQ_SUFFIX, EventBus, Message

HANDLER_FAILED = "handler_failed"


@dataclass
class DeadLetter:
    """One record of a dead-letter topic, as its headers describe it."""

    message: Message
    topic: str
    group: str
    reason: str
    detail: str
    type: str

    @classmethod
    def of(cls, message: Message, dlq_topic: str) -> DeadLetter:
        headers = {k: v.decode(errors="replace") for k, v in message.headers}
        return cls(message=message, topic=headers.get("dlq.topic", dlq_topic.removesuffix(DLQ_SUFFIX)),
                   group=headers.get("dlq.group", ""), reason=headers.get("dlq.reason", ""),
                   detail=headers.get("dlq.detail", ""), type=headers.get("type", ""))

    def line(self, width: int = 160) -> str:
        """One tab-separated line (type, group, reason, the detail's first `width` characters),
        line breaks and tabs written as `\\n`, `\\r`, `\\t`: a pydantic error's detail
        spans lines."""
        fields = (self.type, self.group, self.reason, self.detail.translate(_ESCAPES)[:width])
        return "\t".join(f.translate(_ESCAPES) for f in fields)

    def original(self) -> Message:
        """The event as it was first published: its own headers, without those of the
        dead-letter topic."""
        return Message(self.topic, self.message.key, self.message.value,
                       tuple((k, v) for k, v in self.message.headers if not k.startswith("dlq.")))


_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


@dataclass
class Redriven:
    matched: list[DeadLetter] = field(default_factory=list)  # every group's letter
    chosen: list[DeadLetter] = field(default_factory=list)  # each event of them once: sent
    left: Counter[str] = field(default_factory=Counter)  # by reason, those not matched


async def redrive(bus: EventBus, topic: str, *, groups: Collection[str] = (),
                  reasons: Collection[str] = (HANDLER_FAILED,),
                  dry_run: bool = False) -> Redriven:
    """Publishes again, to `topic`, the events its dead-letter topic holds for `reasons` (by
    default those a handler failed on: a malformed event would only be dead-lettered again)
    and, when given, for `groups`; each event once, however many groups dead-lettered it."""
    found = [DeadLetter.of(m, topic + DLQ_SUFFIX) for m in await bus.dead_letters(topic)]
    out = Redriven()
    sent: set[bytes] = set()
    for letter in found:
        if letter.reason not in reasons or (groups and letter.group not in groups):
            out.left[letter.reason] += 1
            continue
        out.matched.append(letter)
        if letter.message.value not in sent:
            sent.add(letter.message.value)
            out.chosen.append(letter)
    if out.chosen and not dry_run:
        await bus.publish([letter.original() for letter in out.chosen])
    return out
