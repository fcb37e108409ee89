"""``python -m pywsk``: the same command line as the ``pywsk`` console script."""

from pywsk.main import main

main()
