"""chaosreplay: deterministic simulation testing of distributed systems in KVM micro-VMs."""

__version__ = "0.1.0"
