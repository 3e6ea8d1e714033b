"""``lora-tui`` / ``lora-tui demo``: open the demo at once, building it first if need be.

The build runs in a child process while the app is on screen, its progress in each pane;
the panes come alive once their programs are built (at once when the cache is current)."""

from __future__ import annotations

from functools import partial

from rich.console import Console

from lora_tui.cli.compare import run_app
from lora_tui.cli.options import DemoOptions
from lora_tui.common.console import print_error
from lora_tui.common.files import state_log
from lora_tui.demo.build import (
    build_demos,
    demo_programs,
    demo_quantization,
    demos_current,
    shipped_adapters,
    suggested_prompts,
)
from lora_tui.demo.build_child import BuildProcess
from lora_tui.engine.foundations import FoundationPrograms, labelled


def demo_main(options: DemoOptions) -> int:
    errors = Console(stderr=True, highlight=False)
    missing = [str(path) for path in shipped_adapters().values() if not path.is_dir()]
    if missing:
        print_error(
            errors,
            "lora-tui",
            f"the demo's adapters are missing ({', '.join(missing)}); "
            "this install of lora-tui is incomplete: reinstall it",
        )
        return 1
    modes, runtime = options.quantize, options.runtime
    quantizations = [demo_quantization(mode) for mode in modes]
    groups = [FoundationPrograms(w, tuple(p)) for w, p in map(demo_programs, quantizations)]
    try:  # ~/.local/state/lora-tui, the user's own: a fixed name in /tmp was anyone's
        log_path = runtime.log or state_log("lora-tui-demo.log")
    except OSError as err:
        print_error(errors, "lora-tui", f"no folder for the build's log ({err})")
        return 1
    return run_app(
        labelled(groups, [q.label for q in quantizations]),
        log=runtime.log,
        share=runtime.share,
        threads=runtime.threads,
        results=options.results,
        base=options.base,
        suggestions=suggested_prompts(),
        build=None if demos_current(modes) else BuildProcess(partial(build_demos, modes), log_path),
    )
