"""A generic OVSDB client: session, monitor, wire framing, values, TLS. No NB knowledge."""
