"""gdb script: instructions hv-core executes for one hypercall.

Run by tools/hypercall-insns.sh (see docs/bench.md, "Counting
instructions"). Breaks at hv-core's `syscall_entry` when RAX is the
hypercall number HC_NR (and RSI is HC_RSI, if set), skips the first
HC_SKIP such calls (warm-up, start of day), then single-steps HC_CALLS
calls from the entry to the `iretq`/`sysretq` that leaves hv-core and
prints, per call, the instruction count (a `rep` iteration counts as
one), and for the first call the mnemonics that matter under TCG
(locked ops, pushf/popf, CR writes) and the code pages touched.
Deterministic for one build and one guest: compare builds with it when
a timing difference is smaller than the bench's noise or is suspected
to be an emulation artefact.
"""
import os
from collections import Counter

import gdb

NR = int(os.environ.get("HC_NR", "1"))
# Another entry point instead of the hypercall's (e.g. the page-fault stub,
# `trap_stubs+224`): counted from there to the exit, with no RAX filter.
ENTRY = os.environ.get("HC_ENTRY")
RSI = os.environ.get("HC_RSI")
SKIP = int(os.environ.get("HC_SKIP", "300"))
CALLS = int(os.environ.get("HC_CALLS", "5"))
PORT = os.environ.get("HC_PORT", "1234")
# HC_PROFILE=1: also print, for the first call, instructions per function.
PROFILE = os.environ.get("HC_PROFILE") == "1"
WATCHED = ("lock", "pushf", "popf", "cli", "sti", "mov %cr", "mfence", "xchg", "wrmsr", "rdmsr")

gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("target remote :" + PORT)
if ENTRY:
    gdb.execute("hbreak *(" + ENTRY + ")")
else:
    condition = "$rax == %d" % NR + (" && $rsi == %s" % RSI if RSI else "")
    gdb.execute("hbreak *syscall_entry if " + condition)

inferior = gdb.selected_inferior()
hits = 0
counts = []
while len(counts) < CALLS:
    gdb.execute("continue", to_string=True)
    hits += 1
    if hits <= SKIP:
        continue
    first = not counts
    n, kinds, pages, functions = 0, Counter(), set(), Counter()
    while True:
        pc = int(gdb.parse_and_eval("$pc")) & (2**64 - 1)
        head = bytes(inferior.read_memory(pc, 3))
        if head[:2] == b"\x48\xcf" or head == b"\x48\x0f\x07":
            break
        if first:
            text = gdb.execute("x/i $pc", to_string=True).split(":", 1)[1].strip()
            for w in WATCHED:
                if text.startswith(w) or (w == "mov %cr" and "%cr" in text and text.startswith("mov")):
                    kinds[w] += 1
            pages.add(pc >> 12)
            if PROFILE:
                block = gdb.block_for_pc(pc)
                while block is not None and block.function is None:
                    block = block.superblock
                if block is not None:
                    functions[block.function.name] += 1
                else:
                    symbol = gdb.execute("info symbol %d" % pc, to_string=True).split(" in ")[0]
                    functions[symbol.split(" + ")[0]] += 1
        gdb.execute("stepi", to_string=True)
        n += 1
    counts.append(n)
    if first:
        print("first call: %d instructions, %d code pages; %s" % (n, len(pages), dict(kinds)))
        for name, count in functions.most_common():
            print("first call:   %5d %s" % (count, name))
print("hypercall %s: instructions per call %s" % (ENTRY or NR, counts))
gdb.execute("kill")
