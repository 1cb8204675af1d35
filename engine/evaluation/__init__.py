"""Evaluation: benchmarks (`benchmarks` registry, the paper's loaders in `benchmarks_paper`, HumanEval),
`scorers/`, generation `backends/` (vLLM, HF), the code `sandbox`, the sample records and scores
(`samples`), re-scoring saved generations (`rescore`) and training data sets (`datasets`).

A new benchmark goes in `benchmarks.py` (or `benchmarks_paper.py`), a new scorer in `scorers/`,
a new backend in `backends/`. Workers import it; the CLI imports its light parts (`tix benchmarks`,
`tix score`) and torch loads only inside the backends' model code.
"""
