"""``python -m cli``: the ``hookwise`` command."""

from cli.main import main

main()
