"""Example programs used by `pipeplex demo` and the tutorial."""
