"""The iceprod-dag command line (click); logging handlers are configured here and nowhere else."""
