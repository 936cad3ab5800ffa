"""Machinery shared by the batch-system sites: job descriptions, translation helpers, rescue state, the watcher."""
