"""Exit codes of the pilot, distinct per failure kind so DAGMan's RETRY/UNLESS-EXIT can tell them apart."""

from __future__ import annotations

SUCCESS = 0
TASK_FAILED = 1
#: bad spec or config: retrying cannot help, so the DAG uses RETRY ... UNLESS-EXIT PERMANENT
PERMANENT = 2
STAGE_IN_FAILED = 3
STAGE_OUT_FAILED = 4
OVER_MEMORY = 5
OVER_TIME = 6
OVER_DISK = 7
PILOT_ERROR = 8

BY_CATEGORY = {
    "task_failed": TASK_FAILED,
    "config": PERMANENT,
    "stage_in": STAGE_IN_FAILED,
    "stage_out": STAGE_OUT_FAILED,
    "over_memory": OVER_MEMORY,
    "over_time": OVER_TIME,
    "over_disk": OVER_DISK,
    "pilot_error": PILOT_ERROR,
}
CATEGORY_BY_CODE = {code: category for category, code in BY_CATEGORY.items()}
#: the pilot itself was told to stop (SIGTERM from the batch system, the site cancelling the run): its jobs
#: are recorded as "killed"; not a category of its own for DAGMan, which does not retry removed jobs
BY_CATEGORY["killed"] = PILOT_ERROR
