import sys

from amidcc.cli import main

sys.exit(main())
