"""The `curate` command line. Each sub-command lives in its own module of this package and
exposes `register(subparsers)`; `main` discovers them, so adding a command touches one file."""
