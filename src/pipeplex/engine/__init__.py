"""The engine: the cast's members started in order, supervised, and stopped the same way every time.

:mod:`.engine` holds :class:`~.engine.Engine`, what the rest of pipeplex talks to. Its parts
share one :class:`~._cast_state.CastState`: each member's supervision, what follows each of
its runs (:mod:`._exit_policy`), the requests about one member, and the cast's stop. A
member's own stop is :mod:`.stopping`'s; the verdict, each member's seat and its recent
output are the state's tables.

Nothing is imported here: the readiness waits import a seat and :func:`.stopping.first`
from this package, and the engine imports them back.
"""
