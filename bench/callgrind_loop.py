"""The hottest loops of a callgrind profile made with --dump-instr=yes, as instruction counts.

    valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file=/tmp/k.cg \
      deno run --lock=deno.dev.lock -A --v8-flags=--no-liftoff,--single-threaded bench/kernel_ab.ts --a wasm/mesp_relaxed.wasm \
      --b wasm/mesp_relaxed.wasm --reps 2
    python3 bench/callgrind_loop.py /tmp/k.cg

JIT code has no symbols, but every instruction of a loop body runs equally often: grouping the executed
addresses by their count, the largest group by share of all instructions is the hottest loop, and its size is
the loop body's length (a loop's last few instructions may run once more and form a small group of their own).
"""
import collections
import sys

counts = collections.Counter()
addr = 0
skip_next = False
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("calls="):
        skip_next = True  # the next cost line is the call's inclusive cost, not an instruction's
        continue
    if not line or line[0] not in "0123456789+-*":
        continue
    parts = line.split()
    a = parts[0]
    # positions "instr line": an address, or one relative to the last (+N, -N), or the same (*)
    if a.startswith("0x"):
        addr = int(a, 16)
    elif a.startswith("+"):
        addr += int(a[1:])
    elif a.startswith("-"):
        addr -= int(a[1:])
    if skip_next:
        skip_next = False
        continue
    if len(parts) >= 3:
        counts[addr] += int(parts[2])

by_count = collections.Counter(counts.values())
total = sum(counts.values())
rows = sorted(((c * n, c, n) for c, n in by_count.items()), reverse=True)[:8]
for weight, count, n in rows:
    print(f"count {count}: {n} instructions, {weight / total * 100:.1f}% of Ir")
