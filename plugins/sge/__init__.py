"""sge site plugin."""
