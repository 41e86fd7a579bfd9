"""Sinks that turn events into something to read: ``render`` (prefixes, colours, escaping)
and ``terminal`` (the back-pressured writer to stdout). Import the modules themselves."""
