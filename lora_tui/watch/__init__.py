"""A training run watched (``lora-tui --watch RUN_DIR``): its checkpoints exported by
lora-export, in a child process, as training writes them. No Textual: the app runs it on a
thread and shows what it reports."""
