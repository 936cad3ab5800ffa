"""Site plugins: each one runs a compiled DAG on one kind of batch system (installed as iceprod_dag.plugins)."""
