"""`python -m toolkit` runs the `actk` command line."""

from toolkit.cli import main

if __name__ == "__main__":
    main()
