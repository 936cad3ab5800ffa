"""The one DAG engine: DAGMan's semantics over an executor (local processes or batch jobs).

``engine.DagEngine`` walks a parsed DAG; ``executor.Executor`` starts, polls and cancels what it runs;
``recorder.Recorder`` writes what happens. HTCondor runs real DAGMan and does not use it.
"""
