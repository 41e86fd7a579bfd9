"""What `pipeplex status` prints: the members' table, and the lines under it."""

from __future__ import annotations

from pipeplex.control_client import format_status

WEB = {"name": "web", "pid": 4242, "state": "stopping", "uptime": 3.0, "restarts": 0,
       "last_exit": None}


def test_a_cast_that_is_stopping_says_so_and_why() -> None:
    """The table alone showed members 'running' and 'stopping', and not that the whole
    cast was on its way down, nor who asked."""
    text = format_status([WEB], stopping=True,
                         stop_reason="stop requested through the control socket (pid 7)")
    assert text.splitlines()[-1] == ("the cast is stopping (stop requested through the "
                                     "control socket (pid 7))")


def test_a_running_cast_has_no_such_line() -> None:
    assert format_status([WEB]).splitlines()[-1].startswith("web ")
    assert format_status([WEB], stopping=True).splitlines()[-1] == "the cast is stopping"
