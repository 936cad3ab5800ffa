"""DAGMan's DAG language and HTCondor's on-disk formats: parse DAG files, write event logs, status and ClassAds."""
