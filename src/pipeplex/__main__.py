"""``python -m pipeplex``: the same as the ``pipeplex`` command."""

from __future__ import annotations

from ._entry import main

if __name__ == "__main__":
    main()
