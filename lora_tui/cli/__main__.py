"""``python -m lora_tui.cli``: the ``lora-tui`` command, for a venv without its script."""

import sys

from lora_tui.cli.main import main

sys.exit(main())
