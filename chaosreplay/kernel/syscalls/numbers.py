"""Linux x86-64 system call numbers, by name (the subset worth naming in traces)."""

from __future__ import annotations

NUMBERS: dict[str, int] = {
    "read": 0, "write": 1, "open": 2, "close": 3, "stat": 4, "fstat": 5, "lstat": 6,
    "poll": 7, "lseek": 8, "mmap": 9, "mprotect": 10, "munmap": 11, "brk": 12,
    "rt_sigaction": 13, "rt_sigprocmask": 14, "rt_sigreturn": 15, "ioctl": 16,
    "pread64": 17, "pwrite64": 18, "readv": 19, "writev": 20, "access": 21, "pipe": 22,
    "select": 23, "sched_yield": 24, "mremap": 25, "msync": 26, "mincore": 27,
    "madvise": 28, "dup": 32, "dup2": 33, "pause": 34, "nanosleep": 35, "getitimer": 36,
    "alarm": 37, "setitimer": 38, "getpid": 39, "sendfile": 40, "socket": 41, "connect": 42,
    "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46, "recvmsg": 47, "shutdown": 48,
    "bind": 49, "listen": 50, "getsockname": 51, "getpeername": 52, "socketpair": 53,
    "setsockopt": 54, "getsockopt": 55, "clone": 56, "fork": 57, "vfork": 58, "execve": 59,
    "exit": 60, "wait4": 61, "kill": 62, "uname": 63, "fcntl": 72, "flock": 73, "fsync": 74,
    "fdatasync": 75, "truncate": 76, "ftruncate": 77, "getdents": 78, "getcwd": 79,
    "chdir": 80, "fchdir": 81, "rename": 82, "mkdir": 83, "rmdir": 84, "creat": 85,
    "link": 86, "unlink": 87, "symlink": 88, "readlink": 89, "chmod": 90, "fchmod": 91,
    "chown": 92, "umask": 95, "gettimeofday": 96, "getrlimit": 97, "getrusage": 98,
    "sysinfo": 99, "times": 100, "getuid": 102, "getgid": 104, "setuid": 105,
    "setgid": 106, "geteuid": 107, "getegid": 108, "setpgid": 109, "getppid": 110,
    "getpgrp": 111, "setsid": 112, "sigaltstack": 131, "statfs": 137, "fstatfs": 138,
    "getpriority": 140, "sched_getparam": 143, "sched_getscheduler": 145, "mlock": 149,
    "prctl": 157, "arch_prctl": 158, "setrlimit": 160, "sync": 162, "gettid": 186,
    "time": 201, "futex": 202, "sched_setaffinity": 203, "sched_getaffinity": 204,
    "getdents64": 217, "set_tid_address": 218, "fadvise64": 221, "clock_gettime": 228,
    "clock_getres": 229, "clock_nanosleep": 230, "exit_group": 231, "epoll_wait": 232,
    "epoll_ctl": 233, "tgkill": 234, "openat": 257, "mkdirat": 258, "newfstatat": 262,
    "unlinkat": 263, "renameat": 264, "readlinkat": 267, "faccessat": 269, "pselect6": 270,
    "ppoll": 271, "set_robust_list": 273, "get_robust_list": 274, "epoll_pwait": 281,
    "eventfd": 284, "fallocate": 285, "accept4": 288, "eventfd2": 290, "epoll_create1": 291,
    "dup3": 292, "pipe2": 293, "prlimit64": 302, "getcpu": 309, "renameat2": 316,
    "getrandom": 318, "memfd_create": 319, "statx": 332, "rseq": 334, "clone3": 435,
    "close_range": 436, "faccessat2": 439,
    "fchown": 93, "lchown": 94, "getgroups": 115, "tkill": 200, "epoll_create": 213,
    "fchownat": 260, "symlinkat": 266, "fchmodat": 268, "utimensat": 280,
    "timerfd_create": 283, "timerfd_settime": 286, "timerfd_gettime": 287, "preadv": 295,
    "pwritev": 296, "membarrier": 324, "epoll_pwait2": 441,
    "rt_sigpending": 127, "rt_sigtimedwait": 128, "rt_sigqueueinfo": 129,
    "rt_sigsuspend": 130, "restart_syscall": 219, "rt_tgsigqueueinfo": 297, "signalfd": 282,
    "signalfd4": 289, "timer_create": 222, "timer_settime": 223, "timer_gettime": 224,
    "timer_getoverrun": 225, "timer_delete": 226,
    # identity, scheduling, residency, machine, file management (issue 12's second batch)
    "syslog": 103, "setreuid": 113, "setregid": 114, "setgroups": 116, "setresuid": 117,
    "getresuid": 118, "setresgid": 119, "getresgid": 120, "setfsuid": 122, "setfsgid": 123,
    "capget": 125, "capset": 126, "utime": 132, "mknod": 133, "personality": 135,
    "setpriority": 141, "sched_setparam": 142, "sched_setscheduler": 144,
    "sched_get_priority_max": 146, "sched_get_priority_min": 147,
    "sched_rr_get_interval": 148, "munlock": 150, "mlockall": 151, "munlockall": 152,
    "adjtimex": 159, "settimeofday": 164, "sethostname": 170, "setdomainname": 171,
    "readahead": 187, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "getxattr": 191,
    "lgetxattr": 192, "fgetxattr": 193, "listxattr": 194, "llistxattr": 195,
    "flistxattr": 196, "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199,
    "clock_settime": 227, "utimes": 235, "mbind": 237, "set_mempolicy": 238,
    "get_mempolicy": 239, "ioprio_set": 251, "ioprio_get": 252, "mknodat": 259,
    "futimesat": 261, "linkat": 265, "splice": 275, "tee": 276, "sync_file_range": 277,
    "vmsplice": 278, "clock_adjtime": 305, "syncfs": 306, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "sched_setattr": 314, "sched_getattr": 315,
    "mlock2": 325, "copy_file_range": 326, "preadv2": 327, "pwritev2": 328, "openat2": 437,
    "vhangup": 153, "pivot_root": 155, "acct": 163, "mount": 165, "umount2": 166,
    "swapon": 167, "swapoff": 168, "reboot": 169, "ustat": 136, "pkey_mprotect": 329,
    "pkey_alloc": 330, "pkey_free": 331,
}

NAMES: dict[int, str] = {number: name for name, number in NUMBERS.items()}


def syscall_name(number: int) -> str:
    """The name of a syscall number, or `syscall_<n>` for one we do not name."""
    return NAMES.get(number, f"syscall_{number}")
