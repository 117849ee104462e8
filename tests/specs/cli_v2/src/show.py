"""Prints its arguments and an environment variable, as a job's code would."""

import os
import sys

print("args:", " ".join(sys.argv[1:]), "| FLAG:", os.environ.get("FLAG"))
