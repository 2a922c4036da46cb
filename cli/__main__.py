import sys

from jepa_pilot.cli.main import main

sys.exit(main())
