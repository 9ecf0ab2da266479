"""The bottom layer: C core bindings, ELF images, instruction patching, virtual CPU, watchdog."""
