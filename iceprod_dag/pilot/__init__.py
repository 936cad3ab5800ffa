"""The pilot: the glidein-style wrapper every DAG node runs through. Standard library only (Python >= 3.8)."""
