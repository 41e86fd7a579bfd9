"""What `pipeplex status` prints: the members' table, and the lines under it."""

from __future__ import annotations

import signal

from pipeplex.output.status import format_status

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


def test_a_member_that_is_not_running_shows_no_pid() -> None:
    """A member waiting out its restart's backoff showed the pid of the run that had
    ended, a process that is gone, beside "restarting"; a running one shows its own."""
    rows = [{**WEB, "name": state, "state": state, "pid": 4200 + i}
            for i, state in enumerate(("running", "starting", "suspended", "stopping",
                                       "restarting", "exited", "pending", "failed"))]
    shown = {line.split()[0]: line.split()[1] for line in format_status(rows).splitlines()[1:]}
    assert shown == {"running": "4200", "starting": "4201", "suspended": "4202",
                     "stopping": "4203", "restarting": "-", "exited": "-", "pending": "-",
                     "failed": "-"}


def test_a_death_by_a_real_time_signal_is_named_as_the_stream_names_it() -> None:
    """The stream said SIGRTMIN+6, status 'signal 40'."""
    row = {**WEB, "state": "exited", "last_exit": -(signal.SIGRTMIN + 6)}
    assert "SIGRTMIN+6" in format_status([row]).splitlines()[1]
