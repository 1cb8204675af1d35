"""Stand-in for pycosat on a lent GPU machine (bench/device-kit.txt says why it is left out).

reasoning-gym imports it for its SAT-based logic puzzles, which the tiny lab does not use;
anything asked of it raises, naming what to install (a dunder is simply missing)."""


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ModuleNotFoundError(f"pycosat.{name}: pycosat is not in tix's device kit (no cp312 wheel); "
                              "pip install pycosat for reasoning-gym's logic puzzles")
