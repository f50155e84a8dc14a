"""`python -m peftcpp ...`: the `peftcpp` command line."""
import sys

from .app.cli import main

sys.exit(main())
