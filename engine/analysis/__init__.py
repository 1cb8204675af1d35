"""The analyses of a tuned model against its base (DESIGN.md section 5): PCA shift and token shift.

`pca` measures how far the tuned model's hidden representations moved, `tokens` how its
next-token distribution moved on its own responses. The maths is plain numpy on arrays so it
can be tested on synthetic inputs; torch appears only in the functions that run a model, and is
imported there, so importing this package stays light. The `analyse` job (engine.jobs.analyse)
ties them to runs and events.
"""
