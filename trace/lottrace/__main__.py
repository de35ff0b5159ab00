"""``python -m lottrace``: the same as the ``lottrace`` command."""

from .cli import main

main()
