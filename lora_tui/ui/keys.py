"""The keys: the app's (help, cancel, save, quit: they act on the whole session and work
over any dialog) and the main screen's (they act on its panes), each binding's tooltip the
help screen's text, and the keys Textual binds for the app.

The main screen's list holds the app's keys too (their actions name the app), so its footer
shows every key in one order; Ctrl+P is Textual's."""

from __future__ import annotations

from textual.binding import Binding

# Keys that are not bindings of ours, for the help screen: the prompt's Enter and the
# palette's key, which Textual binds.
UNBOUND_KEYS = [
    ("Enter", "send the prompt (to every adapter, or the selected one)"),
    ("Ctrl+P", "command palette: load, unload, settings (thinking too), copy, save"),
]
SELECT_ADAPTER = Binding.Group("select adapter N (digits when the prompt is not focused)")

HELP = Binding("f1", "app.help", "Help", priority=True, tooltip="this help")
HELP_TOO = Binding("question_mark", "app.help", "Help", show=False, tooltip="this help")
CANCEL = Binding(
    "escape",
    "app.cancel",
    "Cancel",
    tooltip="cancel the replies in progress (what arrived is kept), or a prompt set",
)
SAVE = Binding(
    "ctrl+s",
    "app.save_transcript",
    "Save",
    priority=True,
    tooltip="save the transcript as Markdown",
)
QUIT = Binding("ctrl+q", "app.quit", "Quit", priority=True, tooltip="quit")

NEXT = Binding(
    "tab", "select_step(1)", "Next", priority=True, tooltip="select the next / previous adapter"
)
PREVIOUS = Binding(
    "shift+tab",
    "select_step(-1)",
    "Previous",
    show=False,
    priority=True,
    tooltip="select the next / previous adapter",
)
MAXIMIZE = Binding(
    "f2", "maximize", "Maximize", priority=True, tooltip="maximize or restore the selected pane"
)
BROADCAST = Binding(
    "ctrl+b",
    "toggle_broadcast",
    "All/one",
    priority=True,
    tooltip="toggle: send to all adapters / to the selected one",
)
BLIND = Binding(
    "f3",
    "toggle_blind",
    "Blind",
    priority=True,
    tooltip="blind mode: hide names, shuffle panes per prompt, vote, reveal",
)
DIFF = Binding(
    "f4",
    "diff",
    "Diff",
    priority=True,
    tooltip="word diff of the selected pane's last answer with another pane's",
)
DEPARTURE = Binding(
    "f6",
    "toggle_departure",
    "Departure",
    show=False,
    priority=True,
    tooltip="shade each last reply by how unlikely the base found each token (the legend below)",
)
AGAIN = Binding(
    "ctrl+r",
    "regenerate(False)",
    "Again",
    show=False,
    priority=True,
    tooltip="answer the last prompt again in the selected pane",
)
AGAIN_ALL = Binding(
    "f5",
    "regenerate(True)",
    "Again (all)",
    show=False,
    priority=True,
    tooltip="answer the last prompt again in every pane",
)
CLEAR = Binding("ctrl+l", "clear", "Clear", priority=True, tooltip="clear every conversation")
SELECT = [
    *[
        Binding(f"alt+{n}", f"select({n})", show=False, priority=True, group=SELECT_ADAPTER)
        for n in range(1, 10)
    ],
    *[Binding(str(n), f"select({n})", show=False, group=SELECT_ADAPTER) for n in range(1, 10)],
]

APP_BINDINGS = [HELP, HELP_TOO, CANCEL, SAVE, QUIT]
# In the footer's order.
MAIN_SCREEN_BINDINGS = [
    NEXT,
    PREVIOUS,
    QUIT,
    HELP,
    HELP_TOO,
    MAXIMIZE,
    BROADCAST,
    CANCEL,
    BLIND,
    DIFF,
    DEPARTURE,
    AGAIN,
    AGAIN_ALL,
    CLEAR,
    SAVE,
    *SELECT,
]
# In the help's order: help first, then what a session does, quit, and the selection keys.
HELP_BINDINGS = [
    HELP,
    HELP_TOO,
    NEXT,
    PREVIOUS,
    MAXIMIZE,
    BROADCAST,
    CANCEL,
    BLIND,
    DIFF,
    DEPARTURE,
    AGAIN,
    AGAIN_ALL,
    CLEAR,
    SAVE,
    QUIT,
    *SELECT,
]
