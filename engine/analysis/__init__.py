"""Analysis: the Transferability Index and the shifts of a tuned model against its base.

`metrics` is the TI maths (DESIGN.md section 5, pure numpy), `stats` the uncertainty of every
difference (paired t, BH q, McNemar, the paired item bootstrap; pure numpy), `paired` the daemon's
paired items and the `paired_stats` table they fill, `ti` turns stored scores into TI rows (the
daemon's `ti` op), `report` renders rows as table/CSV/Markdown/LaTeX/JSON (the CLI and
the TUI), `imports` reads published results (`tix import`). `pca` measures how far the tuned
model's hidden representations moved, `tokens` how its next-token distribution moved on its own
responses: plain numpy on arrays, torch only inside the functions that run a model. A new
analysis goes here, with its job in engine/jobs/analyse.py. Imported by the daemon, the CLI, the
TUI (report, ti) and workers; importing this package stays light.
"""
