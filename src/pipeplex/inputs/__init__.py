"""Ways into a running cast: the run folder and its named pipes, the console, the control
socket, and the router behind them (import the modules themselves: ``inputs.rundir``, ...)."""
