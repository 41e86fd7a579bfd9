"""The public surface: everything in pipeplex.__all__ exists, and nothing public is missing."""

from __future__ import annotations

import pipeplex


def test_all_is_a_sorted_tuple_of_existing_names() -> None:
    """__all__ lists names that exist, once each."""
    assert isinstance(pipeplex.__all__, tuple)
    assert len(set(pipeplex.__all__)) == len(pipeplex.__all__)
    for name in pipeplex.__all__:
        assert hasattr(pipeplex, name), name


def test_every_public_name_is_in_all() -> None:
    """A public name imported into the package but not listed in __all__ is drift."""
    public = {
        name for name, value in vars(pipeplex).items()
        if not name.startswith("_") and not isinstance(value, type(pipeplex))
        and name != "annotations"  # from __future__ import annotations
    }
    assert public == set(pipeplex.__all__)
