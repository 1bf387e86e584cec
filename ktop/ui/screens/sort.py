"""F6: pick the sort column of the focused table."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class SortScreen(ModalScreen[int]):
    BINDINGS = [Binding("escape,f6,q", "dismiss_none", "Cancel")]
    DEFAULT_CSS = """
    SortScreen { align: center middle; }
    SortScreen > Vertical { width: 30; height: auto; max-height: 80%; border: round $accent; background: $surface; }
    """

    def __init__(self, labels: list[str], current: int):
        super().__init__()
        self.labels = labels
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Sort by")
            yield OptionList(*[Option(label, id=str(i)) for i, label in enumerate(self.labels)])

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = self.current
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))

    def action_dismiss_none(self) -> None:
        self.dismiss(-1)
