"""/etc: the few files libc reads at start-up, synthesised from the node's identity.

`hosts` names every node of the simulation (ProcessConfig.node_names, handed over by the
simulation; the kernel does not import it) at 10.0.0.<index + 1>, the node's own name
also on 127.0.1.1 as Debian does. There is no DNS server on the simulated network, so
resolv.conf names none and nsswitch.conf says to look only at files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaosreplay.kernel.fs.synthetic import ETC_DEV, SynthNode, directory, text
from chaosreplay.kernel.net.addresses import node_address

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
GROUP = "root:x:0:\nnogroup:x:65534:\n"
RESOLV_CONF = "# chaosreplay: the simulated network has no DNS server\noptions attempts:1\n"
NSSWITCH_CONF = ("passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
                 "networks: files\nprotocols: files\nservices: files\n")


def hostname(p: GuestProcess) -> str:
    return p.config.hostname or f"node{p.node_id}"


def hosts(p: GuestProcess) -> str:
    names = list(p.config.node_names) or [hostname(p)]
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{hostname(p)}",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{node_address(i)}\t{name}" for i, name in enumerate(names)]
    return "\n".join(lines) + "\n"


class EtcFs:
    """The /etc mount."""

    name = b"etc"
    dev = ETC_DEV

    def lookup(self, p: GuestProcess, parts: tuple[bytes, ...]) -> SynthNode | None:
        files = {
            b"passwd": lambda: PASSWD, b"group": lambda: GROUP,
            b"hosts": lambda: hosts(p), b"hostname": lambda: hostname(p) + "\n",
            b"resolv.conf": lambda: RESOLV_CONF, b"nsswitch.conf": lambda: NSSWITCH_CONF,
        }
        if not parts:
            return directory(*sorted(files), mode=0o755)
        if len(parts) > 1 or parts[0] not in files:
            return None
        return text(files[parts[0]](), 0o644)
