"""Names of the built-in scorers, importable without loading any scorer (experiment validation
must stay fast); a unit test keeps this list equal to the registry."""

SCORER_NAMES: tuple[str, ...] = (
    "choice_index", "code_tests", "exact_match", "ifeval", "math_hendrycks", "math_verify",
    "mc_letter", "numeric", "reasoning_gym", "squad_f1", "yes_no_first_line",
)
