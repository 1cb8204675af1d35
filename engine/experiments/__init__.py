"""Experiment files: strict loading (`spec`), expansion into runs (`plan`), trl argument checks
(`trainargs`) and the built-in names validation accepts (`registry`).

Imported by the CLI (`tix check`, `tix run`), the TUI's editor (through `tix check`'s code) and
the training job (distributed configs); kept free of torch and the database.
"""
