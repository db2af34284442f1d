"""What a finished run shows: the reporter that builds a directory's tables, figures and HTML page
from its saved files, the sweep figures, and the console (stdout, the progress bar).

May import everything below it; only :mod:`initbench.cli` and :mod:`initbench.api` import it.
"""
