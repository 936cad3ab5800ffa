"""The web UI's blueprints: HTTP in, templates or JSON out. The work is done by ``services``."""
