"""``pipeplex test`` and ``pipeplex replay`` (test mode's commands): loaded only when one of
them runs, so this package imports nothing."""
