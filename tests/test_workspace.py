import importlib


def test_every_layer_imports():
    for name in [
        "assay_scope",
        "assay_context",
        "assay_ops",
        "assay_steps",
        "assay_backends",
        "assay",
    ]:
        module = importlib.import_module(name)
        assert isinstance(module.__all__, list)
