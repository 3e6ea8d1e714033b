"""One module per ``lora-tui`` command: ``compare`` (the app), ``demo``, ``bench`` and
``eval``. Each turns parsed arguments into calls on the engine, the app or the demo's
builder, and prints; ``lora_tui/cli/main.py`` declares the arguments."""
