"""A small training script whose hyperparameters come from scopes and the command line.

Run it as::

    python examples/scope_cli.py train --lr 0.01 -D train.epochs=3 -D model.width=64
    python examples/scope_cli.py train --help

``train`` takes its defaulted arguments from the ``train.*`` keys of the current scope; code
deep inside (``build_model``) reads ``model.*`` keys without any argument passing.
"""

from __future__ import annotations

from assay_scope import auto_param, launch, param_scope


def build_model() -> dict[str, int]:
    """Read the model's shape from the scope, however deep in the call stack we are."""
    return {"width": param_scope.model.width | 32, "depth": param_scope.model.depth | 2}


@auto_param
def train(lr: float = 0.1, epochs: int = 5, batch_size: int = 32) -> float:
    """Train a toy model and print the loss after each epoch.

    Args:
        lr: learning rate of the optimiser.
        epochs: number of passes over the data.
        batch_size: examples per optimisation step.
    """
    with param_scope.record() as used:
        model = build_model()
    print(f"train: lr={lr} epochs={epochs} batch_size={batch_size}")
    print("model: " + " ".join(f"{key}={value}" for key, value in sorted(used.items())))
    # A deterministic stand-in for training: the loss shrinks with lr, width and depth.
    loss = 1.0
    for epoch in range(1, epochs + 1):
        loss *= 1 - lr * (model["width"] * model["depth"]) / (model["width"] * model["depth"] + 8)
        print(f"epoch {epoch}: loss {loss:.4f}")
    return loss


@auto_param
def evaluate(checkpoint: str, split: str = "test") -> None:
    """Pretend to evaluate a checkpoint.

    Args:
        checkpoint: path of the saved model.
        split: which data split to score.
    """
    print(f"evaluate {checkpoint} on {split}: model width {build_model()['width']}")


if __name__ == "__main__":
    launch()
