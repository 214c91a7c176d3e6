"""The ``sessionforce`` command line (Typer + Rich)."""
