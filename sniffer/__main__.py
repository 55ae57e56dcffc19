"""`python -m sniffer` runs the command line."""

from .cli import main

main()
