"""Compare runs from their local records: `python src/compare.py <run or sweep dirs...>`."""

import sys

from srlab.app.compare import main
from srlab.runtime.hydra import report_user_errors

if __name__ == "__main__":
    with report_user_errors():
        sys.exit(main())
