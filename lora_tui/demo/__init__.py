"""The built-in demo: SmolLM2-135M-Instruct with the two adapters this project trained.

- ``build``: fetch the base, export it with the shipped adapters, check the cache (the only
  module of lora_tui that imports the exporter, and only when a build runs);
- ``build_child``: that build in a child process for the app, its events and the
  ``BuildClient`` protocol the app holds;
- ``assets/``: the adapters and their held-out questions, shipped as package data.
"""
