

from textual.screen import Screen


class ModelScreen(Screen):
    """A screen that draws the model the app shows (the PID screen, the graphs): the app hands it
    every model it draws, so pause and time travel hold and step it too."""

    def update_from(self, model) -> None:
        raise NotImplementedError
