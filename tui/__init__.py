"""tix TUI (Textual). Arrives with the TUI issue; it talks to the daemon through engine.client only."""
