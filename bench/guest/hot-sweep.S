# QEMU's live guest in `npm run bench -- peers`: a multiboot kernel (GNU as, 32-bit) that sweeps
# a hot set of HOT_PAGES 4 KiB pages from physical HOT_BASE without end, writing one 32-bit word
# into each page (the sweep's number), and keeps the pages it has written so far at physical
# PAGES_WRITTEN, where the benchmark reads them over QMP (xp) to measure its dirty rate, with
# "PGWR" in the word after once it runs (until then both words are whatever the image held there).
# Paging stays off: the multiboot loader leaves us in flat 32-bit protected mode.
        .set MB_MAGIC, 0x1BADB002
        .set MB_FLAGS, 0
        .set PAGES_WRITTEN, 0x7000
        .text
        .align 4
        .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
        .globl _start
_start:
        cli
        xorl %eax, %eax              # sweep number
        xorl %edx, %edx              # pages written
        movl %edx, PAGES_WRITTEN
        movl $0x52574750, PAGES_WRITTEN + 4
sweep:  movl $HOT_BASE, %ebx
        movl $HOT_PAGES, %ecx
page:   movl %eax, (%ebx)
        incl %edx
        movl %edx, PAGES_WRITTEN
        addl $4096, %ebx
        decl %ecx
        jnz page
        incl %eax
        jmp sweep
