"""The Textual app. It talks to the engine only through ``EngineClient`` (see client.py)."""
