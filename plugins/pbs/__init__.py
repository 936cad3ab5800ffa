"""pbs site plugin."""
