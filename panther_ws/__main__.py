import sys

from panther_ws.network.cli import main

sys.exit(main())
