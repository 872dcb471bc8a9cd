"""The spurious-correlation study: SFT vs DPO vs KTO where the training data carries a shortcut."""
