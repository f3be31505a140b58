"""`python -m earlyrank.cli`: the same as the `earlyrank` command."""

from earlyrank.cli import main

main()
