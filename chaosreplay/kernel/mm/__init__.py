"""Memory management: a guest's address space (VMAs, brk, mmap placement, lazy population)."""
