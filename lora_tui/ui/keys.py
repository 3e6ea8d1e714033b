"""The app's keys: its bindings (each tooltip is the help screen's text), the keys Textual
binds for it, and which actions belong to the main screen alone."""

from __future__ import annotations

from textual.binding import Binding

# Keys that are not the app's own bindings, for the help screen: the prompt's Enter and the
# palette's key, which Textual binds.
UNBOUND_KEYS = [
    ("Enter", "send the prompt (to every adapter, or the selected one)"),
    ("Ctrl+P", "command palette: load, unload, settings (thinking too), copy, save"),
]
MAIN_SCREEN_ACTIONS = {
    "select",
    "select_step",
    "maximize",
    "toggle_broadcast",
    "toggle_blind",
    "diff",
    "regenerate",
    "clear",
}
SELECT_ADAPTER = Binding.Group("select adapter N (digits when the prompt is not focused)")

# The tooltip is the help screen's text (screens/help.py builds it from these bindings).
APP_BINDINGS = [
    Binding("f1", "help", "Help", priority=True, tooltip="this help"),
    Binding("question_mark", "help", "Help", show=False, tooltip="this help"),
    Binding(
        "tab",
        "select_step(1)",
        "Next",
        priority=True,
        tooltip="select the next / previous adapter",
    ),
    Binding(
        "shift+tab",
        "select_step(-1)",
        "Previous",
        show=False,
        priority=True,
        tooltip="select the next / previous adapter",
    ),
    Binding(
        "f2",
        "maximize",
        "Maximize",
        priority=True,
        tooltip="maximize or restore the selected pane",
    ),
    Binding(
        "ctrl+b",
        "toggle_broadcast",
        "All/one",
        priority=True,
        tooltip="toggle: send to all adapters / to the selected one",
    ),
    Binding(
        "escape",
        "cancel",
        "Cancel",
        tooltip="cancel the replies in progress (what arrived is kept), or a prompt set",
    ),
    Binding(
        "f3",
        "toggle_blind",
        "Blind",
        priority=True,
        tooltip="blind mode: hide names, shuffle panes per prompt, vote, reveal",
    ),
    Binding(
        "f4",
        "diff",
        "Diff",
        priority=True,
        tooltip="word diff of the selected pane's last answer with another pane's",
    ),
    Binding(
        "ctrl+r",
        "regenerate(False)",
        "Again",
        show=False,
        priority=True,
        tooltip="answer the last prompt again in the selected pane",
    ),
    Binding(
        "f5",
        "regenerate(True)",
        "Again (all)",
        show=False,
        priority=True,
        tooltip="answer the last prompt again in every pane",
    ),
    Binding("ctrl+l", "clear", "Clear", priority=True, tooltip="clear every conversation"),
    Binding(
        "ctrl+s",
        "save_transcript",
        "Save",
        priority=True,
        tooltip="save the transcript as Markdown",
    ),
    Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="quit"),
    *[
        Binding(f"alt+{n}", f"select({n})", show=False, priority=True, group=SELECT_ADAPTER)
        for n in range(1, 10)
    ],
    *[Binding(str(n), f"select({n})", show=False, group=SELECT_ADAPTER) for n in range(1, 10)],
]
