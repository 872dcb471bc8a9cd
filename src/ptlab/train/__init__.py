"""Post-training engine: objectives, `batch_loss`, and the training loop."""

from ptlab.train.batch_loss import batch_loss


def train(config, resume: bool = False, quiet: bool = False):
    """Train per `config` (a `TrainConfig`, dict or YAML path); returns a `TrainResult`.

    `resume` continues from the latest checkpoint in `output_dir`; `quiet` turns off progress output.
    """
    from ptlab.train.loop import train as _train

    return _train(config, resume=resume, quiet=quiet)


__all__ = ["batch_loss", "train"]
