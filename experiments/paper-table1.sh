#!/bin/sh
# The paper's Table 1 (arXiv 2507.00432): Qwen3-14B-Base and three models tuned from it on maths
# only, 12 benchmarks in three groups, published scores. Imports them (no GPU needed) and prints
# the Transferability Index, v1 and v2 (pooled sigma). Run from the repository root:
#
#   sh experiments/paper-table1.sh [SCORES.csv]
#
# The CSV is reference data outside the repository (../shared/data/README.md); importing it again
# replaces the experiment's imported rows instead of adding to them.
set -e
CSV="${1:-../shared/data/paper_table1_scores.csv}"
tix import scores "$CSV" --experiment paper-table1
tix ti paper-table1 --variant v1
tix ti paper-table1 --variant v2 --sigma pooled
