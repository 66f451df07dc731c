"""The distribution service (M31)."""
