"""lsf site plugin."""
