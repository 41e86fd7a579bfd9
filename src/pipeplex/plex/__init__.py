"""The Python API: ``AsyncPlex`` and ``Plex``, their members, and the checks of what callers
pass. Imports nothing, so that a module here loads only what it uses; ``pipeplex`` exports
the public names."""
