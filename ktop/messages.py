"""Messages from the collector thread to the app."""

from __future__ import annotations

from textual.message import Message

from ktop.model import Model


class ModelReady(Message):
    """A new model; an unprocessed older one is replaced (the model carries all history)."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ModelReady)


class CollectorFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error
