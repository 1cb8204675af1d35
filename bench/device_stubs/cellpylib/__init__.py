"""Stand-in for cellpylib on a lent GPU machine (bench/device-kit.txt says why it is left out).

reasoning-gym imports it for its game-of-life tasks, which the tiny lab does not use; anything
asked of it raises, naming what to install (a dunder is simply missing, so that tools probing
modules with hasattr go on)."""


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ModuleNotFoundError(f"cellpylib.{name}: cellpylib is not in tix's device kit (it needs "
                              "matplotlib); pip install cellpylib for reasoning-gym's game-of-life tasks")
