"""``python -m sessionforce.cli``: the same as the ``sessionforce`` script."""

from sessionforce.cli.app import main

main()
