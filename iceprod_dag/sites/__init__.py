"""Step 3, the site contract: the Site ABC with its declared capabilities, the plugin registry, the command
runner, the conformance test base every plugin's tests subclass, and run control (suspend, resume, retry)
that acts on whatever site a run was submitted to. Implementations live in ``iceprod_dag.plugins``."""
