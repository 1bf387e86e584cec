"""Textual screens and widgets. They draw the model; they never collect."""
