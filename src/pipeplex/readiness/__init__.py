"""Readiness: when a member's run counts as ready, and why one did not get there.

- :mod:`.lines`: its ``ready`` line, watched in its output as it comes;
- :mod:`.ports`: its ``ready_port``, and whose listeners hold a port;
- :mod:`.wait`: one run's whole wait, each condition in turn within ``ready_timeout``,
  and the words for what did not come. What follows (the member ready, restarted, the
  cast stopped) is the engine's to decide.
"""
