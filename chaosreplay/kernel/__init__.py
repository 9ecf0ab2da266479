"""One node's Linux: process model, address space, disk, clocks, system calls.

It never imports chaosreplay.sim: the simulation hands a node's kernel what it needs.
"""
