"""local site plugin."""
