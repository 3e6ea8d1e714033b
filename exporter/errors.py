class ExportError(Exception):
    """Bad input or a refused export: one line that names the file and the problem."""
