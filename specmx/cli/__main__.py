import sys

from specmx.cli import main

sys.exit(main())
