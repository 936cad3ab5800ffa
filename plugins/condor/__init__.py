"""condor site plugin."""
