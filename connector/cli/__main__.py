"""`python -m connector.cli …`: the `yorisoi` console script without installing it."""
import sys

from connector.cli import main

sys.exit(main())  # pragma: no cover
