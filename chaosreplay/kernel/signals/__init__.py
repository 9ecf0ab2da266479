"""Linux signal machinery for the node kernel, as pure data and functions (no KVM).

sigset (masks and rt_sigprocmask), actions (sigaction, default actions, the handler
table), siginfo (siginfo_t), queue (pending signals and Linux's delivery order),
altstack (sigaltstack), fpstate (the XSAVE image in a frame) and frame (rt_sigframe
set-up and rt_sigreturn). Each works on plain values and a small guest-memory interface,
so the tasks that own the state decide when to call them.
"""
