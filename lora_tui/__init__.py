"""lora-tui: compare LoRA adapters that share one foundation weight file, live in a terminal."""
