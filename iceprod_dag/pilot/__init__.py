"""The pilot: the glidein-style wrapper every DAG node runs through. Standard library only (Python >= 3.8).

Modules, one concept each:

- ``spec``: load a task spec and resolve it for one job (expressions, iterations, requirements, settings)
- ``staging``: file:// and http(s) transfers with checksums, retries and backoff
- ``monitor``: process-tree sampling (psutil or /proc), scratch disk use, nvidia-smi
- ``limits``: memory allowance and lending, wall time and disk limits, killing a tree (TERM, then KILL)
- ``supervisor``: the sampling thread that applies the limits to every running job
- ``record``: the stats record of one attempt
- ``runjob``: one attempt of one job (`pilot run`)
- ``multijob``: pilot mode, several jobs within a resource envelope (`pilot multi`)
- ``worksource``: where pilot mode gets its work (the WorkSource interface)
- ``build``: the zipapp; ``exitcodes``: what DAGMan sees; ``__main__``: the command line
"""
