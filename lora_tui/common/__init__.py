"""What the exporter, the engine and the commands share that is not the artifact contract:
the terminal (``console``), native output kept off it (``native_output``) and files written
whole or not at all (``files``). Neither torch nor Textual is imported here."""
