"""The AUW-GCN model and the runtimes that execute it. Torch is imported lazily."""


def __getattr__(name):
    if name in ("AUWGCN",):
        from mespot.engine.model import AUWGCN
        return AUWGCN
    if name in ("load_checkpoint", "save_checkpoint"):
        from mespot.engine import checkpoint
        return getattr(checkpoint, name)
    raise AttributeError(name)
