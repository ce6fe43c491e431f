"""Compare runs from their local records: `python src/compare.py <run or sweep dirs...>`."""

import sys

from srlab.cli import report_user_errors
from srlab.compare import main

if __name__ == "__main__":
    with report_user_errors():
        sys.exit(main())
