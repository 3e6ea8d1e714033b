"""The app's notifications say what they quote as written: a file's path, an engine's error,
an adapter's name. Textual reads a notification's message as markup unless told not to, so
``could not save out[/]/t.md`` raised ``MarkupError`` and ``support[lr=1e-4]`` lost its
brackets; here every notification is text, whoever sends it, with no control character."""

from __future__ import annotations

from textual.notifications import SeverityLevel

from lora_tui.common.literal import printable


class LiteralNotices:
    """Mixed into the app before ``App``: its ``notify`` with markup off by default."""

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        super().notify(  # type: ignore[misc]
            printable(message),
            title=printable(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )
