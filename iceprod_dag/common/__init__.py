"""Shared vocabulary: exceptions, on-disk names, states, units and the expression language.

Standard library only, Python >= 3.8: this folder and ``pilot/`` are what the pilot zipapp ships to workers
(``iceprod_dag.compile.pilotzip``), so nothing here may import a third-party package or another folder.
"""
