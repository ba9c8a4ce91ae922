"""`python -m aisle` runs the command line."""

from aisle.cli import main

main()
