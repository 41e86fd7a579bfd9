# A program in the style of the classic tutorial: it never flushes its output.
while True:
    line = input()
    print("A heard: " + line)
