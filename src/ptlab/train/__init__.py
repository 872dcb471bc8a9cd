"""Post-training engine: objectives, `batch_loss`, and the training loop."""

from ptlab.train.batch_loss import batch_loss


def train(config):
    """Train per `config` (a `TrainConfig`, dict or YAML path); returns a `TrainResult`."""
    from ptlab.train.loop import train as _train

    return _train(config)


__all__ = ["batch_loss", "train"]
