"""slurm site plugin."""
