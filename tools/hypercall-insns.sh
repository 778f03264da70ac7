#!/bin/sh
# Instructions hv-core executes for one hypercall of a boot image:
#   tools/hypercall-insns.sh ISO HV_CORE_ELF [NR [RSI]]
# ISO is a GRUB image `cargo xtask` made (target/iso/*.iso; the bench's
# has /boot/bench as its module), HV_CORE_ELF the hv-core binary inside it
# (for its symbols). NR is the hypercall number (1: mmu_update), RSI an
# optional second-argument filter (1: one request). HC_SKIP and HC_CALLS
# as in tools/hypercall_insns.py; HC_ENTRY=ADDR_EXPR counts from another
# entry (HC_ENTRY='trap_stubs+224': a guest page fault). See docs/bench.md.
set -eu
iso=$1 elf=$2
export HC_NR=${3:-1}
[ $# -ge 4 ] && export HC_RSI=$4
port=${HC_PORT:-1234}
qemu-system-x86_64 -machine q35 -m 512M -smp 1 -accel tcg -cpu max \
    -display none -monitor none -serial null -no-reboot \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -cdrom "$iso" -gdb tcp::"$port" -S &
qemu=$!
trap 'kill $qemu 2>/dev/null || true' EXIT
sleep 1
gdb -q -batch -ex "file $elf" -x "$(dirname "$0")/hypercall_insns.py" 2>&1 |
    grep -E '^(first call|hypercall)'
