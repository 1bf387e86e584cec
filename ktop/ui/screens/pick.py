"""Small modal screens: pick one of a list, and confirm an action."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 50; height: auto; max-height: 80%; border: round $accent; background: $surface;
    padding: 0 1; }}
{name} OptionList {{ height: auto; max-height: 20; }}
{name} Horizontal {{ height: auto; }}
"""


class PickScreen(ModalScreen[Any]):
    """Returns the value of the picked option, or None on Escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = _CSS.format(name="PickScreen")

    def __init__(self, title: str, options: Sequence[tuple[Text | str, Any]], current: int = 0):
        super().__init__()
        self.title_text = title
        self.options = list(options)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text))
            yield OptionList(*[Option(label if isinstance(label, Text) else Text(label), id=str(i))
                               for i, (label, _v) in enumerate(self.options)])

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        if self.options:
            ol.highlighted = min(self.current, len(self.options) - 1)
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.options[int(event.option.id)][1])

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no; `y` and `n` work too."""

    BINDINGS = [Binding("escape,n", "answer(False)", "No"), Binding("y", "answer(True)", "Yes")]
    DEFAULT_CSS = _CSS.format(name="ConfirmScreen")

    def __init__(self, question: Text):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AskScreen(ModalScreen[Optional[str]]):
    """One line of input; Enter returns it, Escape returns None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = _CSS.format(name="AskScreen")

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.question))
            yield Input()

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
