"""Training: settings and their defaults, devices and precision, callbacks and the two-phase
trainer."""
