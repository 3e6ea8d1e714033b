from lora_tui.format import ArtifactError


class ExportError(ArtifactError):
    """Bad input or a refused export: one line that names the file and the problem."""
