"""Configuration schema, examples and site configs, installed as iceprod_dag.config."""
