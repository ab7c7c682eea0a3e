from bloop.platform.kit.events.bus.port import EventBus, Handler, Message, Subscription

__all__ = ["EventBus", "Handler", "Message", "Subscription"]
