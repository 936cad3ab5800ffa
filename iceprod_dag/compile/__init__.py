"""Step 2, compile: a dataset becomes a DAGMan workflow on disk (DAG file, submit files, task specs, the
pilot zipapp)."""
