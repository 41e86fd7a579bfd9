"""Sinks that turn events into something to read: ``render`` (prefixes, colours, escaping),
``terminal`` (the back-pressured writer to stdout) and ``merged`` (the stream kept in memory
for reports). Import the modules themselves."""
