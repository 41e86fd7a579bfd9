# The tutorial's second program: answers each line, never flushes, keeps count.
count = 0
while True:
    line = input()
    count += 1
    print(f"B #{count}: {line[::-1]}")
