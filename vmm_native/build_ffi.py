"""cffi API-mode build of the C core into chaosreplay._vmm (run by setup.py's cffi_modules)."""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
SOURCES = ["kvm_vm.c", "cpu_setup.c", "paging.c", "exit_loop.c", "snapshot.c", "snapshot_check.c",
           "task_context.c", "vm_clone.c", "fastpath.c"]

ffibuilder = FFI()
ffibuilder.cdef((HERE / "vmm_cdef.h").read_text())
ffibuilder.set_source(
    "chaosreplay._vmm",
    '#include "vmm.h"',
    sources=[str((HERE / name).relative_to(Path.cwd())) if HERE.is_relative_to(Path.cwd())
             else str(HERE / name) for name in SOURCES],
    include_dirs=[str(HERE)],
    # headers: a changed one (the fast path's generated code, say) rebuilds the module
    depends=[str(h) for h in sorted(HERE.glob("*.h")) + sorted(HERE.glob("fastpath/*.h"))],
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
