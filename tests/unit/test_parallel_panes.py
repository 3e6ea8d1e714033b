"""The panes-at-once benchmark's bookkeeping: a round's figure for a layout is the median of
its turns, and its ratios are to one program alone in one process."""

from __future__ import annotations

from benchmarks.parallel_panes import median_of_turns, medians


def _turn(alone: float, together: float, same: bool = True, threads: int = 1) -> dict:
    return {
        "alone_tok_s": alone,
        "together_tok_s": together,
        "alone_decode_tok_s": alone + 5.0,
        "together_decode_tok_s": together + 5.0,
        "together_per_pane": {"a": together / 2, "b": together / 2},
        "alone_threads": [2],
        "together_threads": [threads],
        "same_text_as_alone": same,
    }


def test_a_round_takes_the_median_of_each_speed_and_every_thread_count_seen() -> None:
    merged = median_of_turns([_turn(40.0, 50.0), _turn(60.0, 45.0, threads=2), _turn(50.0, 70.0)])
    # Each speed's own median, not one turn's figures: a slow turn does not drag the rest.
    assert merged["alone_tok_s"] == 50.0 and merged["together_tok_s"] == 50.0
    assert merged["alone_decode_tok_s"] == 55.0 and merged["together_decode_tok_s"] == 55.0
    assert merged["together_threads"] == [1, 2]
    assert merged["same_text_as_alone"] is True


def test_a_turn_whose_text_differed_marks_the_round() -> None:
    merged = median_of_turns([_turn(40.0, 50.0), _turn(41.0, 51.0, same=False), _turn(42.0, 52.0)])
    assert merged["same_text_as_alone"] is False


def test_ratios_are_to_one_program_alone_in_one_process() -> None:
    memory = {"second_added_pss_mib": 110.0, "second_lora_plus_kv_mib": 100.0}
    memory["engine_pss_mib"] = 900.0
    runs = {
        "one process": [{**_turn(40.0, 40.0), **memory} for _ in range(3)],
        "threads follow the work": [{**_turn(40.0, 52.0), **memory} for _ in range(3)],
    }
    table = medians(runs)
    follow = table["threads follow the work"]
    assert follow["together_vs_one_alone"] == 1.3  # 52 together over 40 alone
    assert follow["together_decode_vs_one_alone"] == round(57 / 45, 3)
    assert follow["second_added_vs_lora_plus_kv"] == 1.1
