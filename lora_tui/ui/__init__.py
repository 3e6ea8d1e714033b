"""The Textual app. It talks to the engine only through ``lora_tui.engine.protocol``."""
