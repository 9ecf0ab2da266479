"""One node's network stack: addresses, AF_UNIX, UDP and TCP sockets, the wire format."""
