import sys

from panther_ws.cli import main

sys.exit(main())
