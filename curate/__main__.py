"""`python -m curate`: the same command line as the `curate` script."""
from curate.main import main

raise SystemExit(main())
