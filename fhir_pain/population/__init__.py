"""Population-scale evaluation: bulk sweeps, the work queue, subscriptions."""
