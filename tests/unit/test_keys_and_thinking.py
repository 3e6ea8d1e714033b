"""The bindings say what they do, and thinking is told from answer in streamed text."""

from __future__ import annotations

from lora_tui.ui.keys import APP_BINDINGS, HELP_BINDINGS, MAIN_SCREEN_BINDINGS


def test_every_binding_says_what_it_does() -> None:
    """The help screen is built from the bindings: one without a text would be missing."""
    from lora_tui.ui.screens.help import help_rows

    for binding in HELP_BINDINGS:
        assert binding.tooltip or binding.group, binding.key
    keys = " ".join(keys for keys, _ in help_rows(HELP_BINDINGS))
    assert "Alt+1…9 / 1…9" in keys and "F1 / ?" in keys


def test_the_help_lists_every_key_of_the_app_and_the_main_screen() -> None:
    bound = {id(binding) for binding in [*APP_BINDINGS, *MAIN_SCREEN_BINDINGS]}
    assert {id(binding) for binding in HELP_BINDINGS} == bound
    assert len(HELP_BINDINGS) == len(bound)


def test_think_splitter_finds_tags_split_across_pieces() -> None:
    from lora_tui.ui.widgets.thinking import ThinkSplitter

    splitter = ThinkSplitter()
    runs = []
    for piece in ["<thi", "nk>I should ", "be brief.</", "think>\n\nParis", "."]:
        runs += splitter.feed(piece)
    runs += splitter.flush()
    thought = "".join(text for thinking, text in runs if thinking)
    answer = "".join(text for thinking, text in runs if not thinking)
    assert thought == "I should be brief."
    assert answer == "\n\nParis."
    # Text that only looks like the start of a tag is answer, once the reply ends.
    plain = ThinkSplitter()
    assert plain.feed("a < b and <th") == [(False, "a < b and ")]
    assert plain.flush() == [(False, "<th")]
