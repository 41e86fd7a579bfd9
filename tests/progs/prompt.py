# Asks a question without a newline and waits for the answer, like an installer.
import sys

sys.stdout.write("what's your name? ")
sys.stdout.flush()
name = sys.stdin.readline().strip()
print(f"hello {name}")
