"""What the model knows it does not know: calibration metrics, the σ calibration, the domain model, a run's
fitted applicability, per-group and held-out-family checks.

Modules only; importing the package imports none of them (they sit in different layers, see docs/design.md)."""
