"""The client side of the daemon: `connection` (Client, starting a daemon) and `protocol` (the wire format).

Imported by the CLI, the TUI and scripts; the daemon imports `protocol` only. Nothing here
imports the daemon, the database layer or an ML library.
"""
