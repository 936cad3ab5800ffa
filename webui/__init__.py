"""The web UI and JSON API (Flask), installed as iceprod_dag.webui."""
