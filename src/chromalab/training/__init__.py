"""Training: one LightningModule per objective, on a shared base, driven by trainer.train()."""
