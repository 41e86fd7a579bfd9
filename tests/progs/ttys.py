# Reports which of its standard streams are terminals, and its session and group.
import os

print(f"tty {int(os.isatty(0))}{int(os.isatty(1))}{int(os.isatty(2))} "
      f"leader {int(os.getsid(0) == os.getpid())}{int(os.getpgid(0) == os.getpid())}")
